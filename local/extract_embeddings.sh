#!/usr/bin/env bash
# Stage 4 wrapper (Kaldi style): embeddings of every utterance of a data dir with a trained model.
#   <out-dir>/xvector.{ark,scp} (+ spk_xvector.{ark,scp} with --spk-mean true), utt2spk, extract.yaml
# The feature config comes from <exp-dir>/config.yaml (dither forced to 0); see bccmt/embed.py for
# the chunking policy of long utterances and the feature checks.
set -euo pipefail
export LC_ALL=C

nj=4  # number of parallel jobs
cmd=run.py  # job runner (cmd.sh: run.py or run.py --backend slurm ...)
spk_mean=false  # also write per-speaker mean embeddings (for the training set: AS-norm cohort)
max_chunk_frames=3000  # utterances longer than this are embedded in chunks and averaged
length_quantum=16  # inputs keep their central T - T % q frames so that equal lengths batch (1 = all)
device=cpu  # torch device for the model
usage="Usage: $0 [options] <exp-dir> <data-dir> <out-dir>
 e.g.: $0 --nj 8 --spk-mean true exp/bccmt_tiny data/vox2_dev exp/bccmt_tiny/embeddings/vox2_dev"

echo "$0 $*" >&2
. "${0%/*}/../utils/parse_options.sh"

if [ $# -ne 3 ]; then
  printf '%b\n' "$usage" >&2
  exit 1
fi
exp_dir=$1
data=$2
out=$3
[[ $nj =~ ^[1-9][0-9]*$ ]] || { echo "$0: --nj must be a positive integer, got '$nj'" >&2; exit 1; }

for f in "$exp_dir/config.yaml" "$exp_dir/models/final.pt" "$data/utt2spk"; do
  [ -f "$f" ] || { echo "$0: no such file: $f" >&2; exit 1; }
done
[ -f "$data/feats.scp" ] || [ -f "$data/wav.scp" ] || {
  echo "$0: $data has neither feats.scp nor wav.scp" >&2
  exit 1
}

opts=(--max-chunk-frames "$max_chunk_frames" --length-quantum "$length_quantum" --device "$device")
run_tool() { python -m bccmt.bin.extract_embeddings --exp-dir "$exp_dir" --data "$data" "$@"; }

# split -> $cmd JOB -> merge -> count. The tool lists the utterances (those of the feature table
# extraction reads: feats.scp, or wav.scp where features are recomputed) so that the count below
# checks against the same list.
mkdir -p "$out/log" "$out/split"
rm -f "$out"/xvector.[0-9]*.{ark,scp} "$out"/split/utts*
run_tool --list-utts > "$out/split/utts" || {
  echo "$0: cannot list the utterances of $data for $exp_dir (see above)" >&2
  exit 1
}
n_utt=$(wc -l < "$out/split/utts")
[ "$n_utt" -gt 0 ] || { echo "$0: no utterances to embed in $data" >&2; exit 1; }
if [ "$nj" -gt "$n_utt" ]; then
  echo "$0: only $n_utt utterances: using $n_utt jobs instead of $nj" >&2
  nj=$n_utt
fi
parts=()
for n in $(seq "$nj"); do parts+=("$out/split/utts.$n"); done
split_scp.py "$out/split/utts" "${parts[@]}"

eval "cmd_arr=($cmd)"  # cmd may hold quoted options, e.g. run.py --slurm-opts '-p cpu'
if ! "${cmd_arr[@]}" JOB=1:"$nj" "$out/log/extract.JOB.log" \
    python -m bccmt.bin.extract_embeddings --exp-dir "$exp_dir" --data "$data" --out "$out" \
      --utt-list "$out/split/utts.JOB" --part JOB "${opts[@]}"; then
  echo "$0: extraction failed for $data; see $out/log/extract.*.log" >&2
  exit 1
fi

[ "$spk_mean" = true ] && opts+=(--spk-mean)
run_tool --out "$out" --merge "$nj" "${opts[@]}" || {
  echo "$0: cannot merge the $nj parts in $out (see above)" >&2
  exit 1
}

[ -f "$out/xvector.scp" ] || { echo "$0: no $out/xvector.scp after extraction" >&2; exit 1; }
n_emb=$(wc -l < "$out/xvector.scp")
[ "$n_utt" -eq "$n_emb" ] || { echo "$0: $n_emb embeddings for $n_utt utterances" >&2; exit 1; }
echo "$0: $n_emb embeddings in $out/xvector.scp" >&2
