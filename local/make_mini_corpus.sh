#!/usr/bin/env bash
# Stage 0 (default data): synthesizes the offline mini corpus with eSpeak NG under <out-root>:
#   voxceleb2/dev/wav/<spk>/<video>/<n>.wav  voxceleb1/wav/...  voxceleb1/veri_test2.txt
#   (and voxceleb1/list_test_all2.txt, list_test_hard2.txt when the config sets trials_e, trials_h)
#   musan/{noise,music,speech}/synthetic/*.wav  rirs_noises/simulated_rirs/{small,medium,large}room/
# The output depends only on the config (not on --nj). A rerun with the same config is a no-op
# (<out-root>/.done); a different config refuses to touch an existing corpus (remove it first).
# Expects the project env (. ./path.sh).
set -euo pipefail
export LC_ALL=C

config=conf/mini_corpus.yaml   # mini-corpus YAML (sizes, speaker/channel difficulty knobs)
nj=2                           # parallel processes (the output does not depend on it)
seed=""                        # overrides the config's seed (empty: the config's seed)
usage="Usage: $0 [options] <out-root>
 e.g.: $0 --nj 2 --config conf/mini_corpus_quick.yaml mini_corpus"

echo "$0 $*" >&2
. "${0%/*}/../utils/parse_options.sh"

if [ $# -ne 1 ]; then
  printf '%b\n' "$usage" >&2
  exit 1
fi
out_root=$1
[[ $nj =~ ^[1-9][0-9]*$ ]] || { echo "$0: --nj must be a positive integer, got '$nj'" >&2; exit 1; }
if [ ! -f "$config" ]; then
  echo "$0: no such config: $config" >&2
  exit 1
fi

python -m bccmt.bin.make_mini_corpus --config "$config" --out "$out_root" --nj "$nj" \
  ${seed:+--seed "$seed"}

for f in .done voxceleb1/veri_test2.txt; do
  [ -s "$out_root/$f" ] || { echo "$0: $out_root/$f missing after generation" >&2; exit 1; }
done
trials=""
for f in veri_test2.txt list_test_all2.txt list_test_hard2.txt; do
  if [ -f "$out_root/voxceleb1/$f" ]; then trials+=" $f $(wc -l < "$out_root/voxceleb1/$f"),"; fi
done
echo "$0: $out_root: $(find "$out_root/voxceleb2/dev/wav" -name '*.wav' | wc -l) train and" \
  "$(find "$out_root/voxceleb1/wav" -name '*.wav' | wc -l) test utterances, trials:${trials%,}"
