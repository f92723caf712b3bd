#!/usr/bin/env bash
# Stage 5: scores trial lists with each backend for one model, from its stage-4 embeddings.
#   exp/<model>/scores/<trials-name>.<backend>.score   enroll test score (trial order)
#   exp/<model>/scores/<trials-name>.<backend>.result  EER %, minDCF(0.01), minDCF(0.001),
#                                                      thresholds, backend description (YAML)
# Needs exp/<model>/embeddings/<train-set>/{xvector.scp,spk_xvector.scp,utt2spk} (training mean,
# AS-norm cohort of training speaker means, LDA/PLDA data) and
# exp/<model>/embeddings/<eval-set>/xvector.scp, where <eval-set> is the data dir two levels above
# each trials file (data/vox1/trials/x.kaldi -> vox1) unless --eval-set is given.
# Backends: cosine (training mean subtracted, length-normalised), asnorm (AS-norm of cosine with
# the top-N of the training-speaker cohort), plda (mean, LDA, length norm, two-covariance PLDA LLR).
set -euo pipefail
export LC_ALL=C

backends="cosine asnorm plda"  # backends to run (cosine asnorm plda)
train_set=vox2_dev  # embeddings/<set> giving the mean, the AS-norm cohort and the PLDA training data
eval_set=""  # embeddings/<set> of the trial utterances (default: the data dir above each trials file)
top_n=300  # AS-norm: number of top cohort scores (capped at the cohort size)
lda_dim=auto  # LDA dim before PLDA: auto = min(D, 100, #speakers-1), none, or a number
plda_iters=10  # PLDA EM iterations
usage="Usage: $0 [options] <exp-dir> <trials> [<trials> ...]
 e.g.: $0 --backends \"cosine asnorm\" exp/bccmt_tiny data/vox1/trials/vox1_O_cleaned.kaldi"

echo "$0 $*" >&2
. "${0%/*}/../utils/parse_options.sh"

if [ $# -lt 2 ]; then
  printf '%b\n' "$usage" >&2
  exit 1
fi
exp_dir=$1
shift
backends=${backends//,/ }

for t in "$@"; do
  [ -f "$t" ] || { echo "$0: no such trials file: $t" >&2; exit 1; }
done
[ -f "$exp_dir/embeddings/$train_set/xvector.scp" ] || {
  echo "$0: $exp_dir/embeddings/$train_set/xvector.scp missing (run stage 4 for $train_set)" >&2
  exit 1
}

opts=()
[ -n "$eval_set" ] && opts+=(--eval-set "$eval_set")
python -m bccmt.bin.score_trials --exp-dir "$exp_dir" --train-set "$train_set" \
  --backends "$backends" --top-n "$top_n" --lda-dim "$lda_dim" --plda-iters "$plda_iters" \
  "${opts[@]}" "$@"

# Output contract: one score per trial and a result for every list x backend.
for t in "$@"; do
  name=$(basename "$t")
  name=${name%.*}
  n_trials=$(grep -c . "$t" || true)  # || true: grep -c exits 1 on 0, set -e would exit silently
  for b in $backends; do
    score=$exp_dir/scores/$name.$b.score
    [ -f "$score" ] || { echo "$0: no $score after scoring" >&2; exit 1; }
    n_scores=$(grep -c . "$score" || true)
    [ "$n_scores" -eq "$n_trials" ] || {
      echo "$0: $score has $n_scores lines for $n_trials trials in $t" >&2
      exit 1
    }
    [ -f "$exp_dir/scores/$name.$b.result" ] || { echo "$0: no result for $score" >&2; exit 1; }
    printf '%s %-8s %s\n' "$name" "$b" "$(grep -E '^(eer_percent|min_dcf_p[0-9.]+):' \
      "$exp_dir/scores/$name.$b.result" | tr '\n' ' ')"
  done
done
