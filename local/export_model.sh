#!/usr/bin/env bash
# Stage 7 for one model: export it (ONNX fp32 + int8, TorchScript; written only if the parity
# checks pass), then embed the backend and evaluation sets from audio with each exported runtime
# and score them like stages 4-5:
#   <exp>/export/                                   model.onnx, model.int8.onnx, metadata.json, ...
#   <exp>/export_eval/<runtime>/embeddings/<set>/   xvector.{ark,scp}, utt2spk
#   <exp>/export_eval/<runtime>/scores/             local/score.sh's *.score, *.result, done
# Runtimes: fp32 and int8 are our `bccmt embed` (onnxruntime, no torch); sherpa is sherpa-onnx's
# speaker extractor on model.onnx (its own fbank of the whole file). A rerun keeps an export newer
# than the model and its stage-5 results, and a runtime's scores newer than the export.
set -euo pipefail
export LC_ALL=C

int8_method=dynamic              # onnxruntime int8 quantization: dynamic or static
calib_feats=""                   # static int8: feats.scp of training utterances to calibrate on
runtimes="fp32 int8 sherpa"      # exported runtimes to embed and score with
backends="cosine asnorm plda"    # local/score.sh backends
usage="Usage: $0 [options] <exp-dir> <backend-data-dir> <eval-data-dir>
 e.g.: $0 --runtimes \"fp32 sherpa\" exp/bccmt_tiny_kd data/vox2_dev_backend data/vox1"

echo "$0 $*" >&2
. "${0%/*}/../utils/parse_options.sh"

if [ $# -ne 3 ]; then
  printf '%b\n' "$usage" >&2
  exit 1
fi
exp=$1
backend_data=$2
eval_data=$3
case $int8_method in dynamic|static) ;; *) echo "$0: --int8-method must be dynamic or static" >&2; exit 1;; esac
if [ $int8_method = static ] && [ -z "$calib_feats" ]; then
  echo "$0: --int8-method static needs --calib-feats" >&2; exit 1
fi
for r in $runtimes; do
  case $r in fp32|int8|sherpa) ;; *) echo "$0: unknown runtime '$r' (fp32 int8 sherpa)" >&2; exit 1;; esac
done
for f in "$exp/models/final.pt" "$backend_data/wav.scp" "$backend_data/utt2spk" \
    "$eval_data/wav.scp" "$eval_data/utt2spk"; do
  [ -f "$f" ] || { echo "$0: no such file $f" >&2; exit 1; }
done
trials=$(ls "$eval_data"/trials/*.kaldi 2>/dev/null) || { echo "$0: no $eval_data/trials/*.kaldi" >&2; exit 1; }

newer() {  # <file> <other>...: true if <file> exists and is newer than every <other>
  [ -f "$1" ] || return 1
  local f; for f in "${@:2}"; do [ "$1" -nt "$f" ] || return 1; done
}

if newer "$exp/export/metadata.json" "$exp/models/final.pt" "$exp"/scores/*.cosine.result; then
  echo "$0: $exp/export is newer than its model and results: kept"
else
  export_opts=(--int8 --int8-method $int8_method)
  [ -n "$calib_feats" ] && export_opts+=(--calib-feats "$calib_feats")
  python -m bccmt.bin.export --exp-dir "$exp" "${export_opts[@]}"
fi

for r in $runtimes; do
  d=$exp/export_eval/$r
  if newer "$d/scores/done" "$exp/export/model.onnx" "$exp/export/model.int8.onnx"; then
    echo "$0: $d/scores are newer than the export: kept"; continue
  fi
  rm -f "$d/scores/done"
  for data in "$backend_data" "$eval_data"; do
    out=$d/embeddings/$(basename "$data")
    if [ $r = sherpa ]; then
      python -m bccmt.bin.sherpa_embed --model "$exp/export" --wav-scp "$data/wav.scp" --out-dir "$out"
    else
      bccmt embed --model "$exp/export" --precision $r --wav-scp "$data/wav.scp" --out-dir "$out"
    fi
    n_in=$(grep -c "[^[:space:]]" "$data/wav.scp")
    n_out=$(wc -l < "$out/xvector.scp")
    if [ "$n_out" -ne "$n_in" ]; then
      echo "$0: $out/xvector.scp has $n_out embeddings for $n_in utterances of $data/wav.scp" >&2
      exit 1
    fi
    cp "$data/utt2spk" "$out/utt2spk"
    echo "$0: $r: $n_out embeddings of $data in $out"
  done
  # shellcheck disable=SC2086  # one argument per trial list
  local/score.sh --backends "$backends" --train-set "$(basename "$backend_data")" "$d" $trials
  touch "$d/scores/done"
done
