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

opts=()
[ "$spk_mean" = true ] && opts+=(--spk-mean)
python -m bccmt.bin.extract_embeddings --exp-dir "$exp_dir" --data "$data" --out "$out" \
  --nj "$nj" --cmd "$cmd" --max-chunk-frames "$max_chunk_frames" \
  --length-quantum "$length_quantum" --device "$device" "${opts[@]}"

# grep -c exits 1 on a count of 0, which set -e would turn into a silent exit: || true
n_utt=$(grep -c . "$data/utt2spk" || true)
[ -f "$out/xvector.scp" ] || { echo "$0: no $out/xvector.scp after extraction" >&2; exit 1; }
n_emb=$(grep -c . "$out/xvector.scp" || true)
[ "$n_utt" -eq "$n_emb" ] || { echo "$0: $n_emb embeddings for $n_utt utterances" >&2; exit 1; }
echo "$0: $n_emb embeddings in $out/xvector.scp" >&2
