#!/usr/bin/env bash
# Stage 0: VoxCeleb corpora -> Kaldi data dirs and Kaldi trial lists.
#   <data-root>/vox2_dev   (training: VoxCeleb2 dev, <vox2>/dev/aac/*.m4a or <vox2>/dev/wav/*.wav)
#   <data-root>/vox1       (evaluation: all of <vox1>/wav)
#   <data-root>/vox1/trials/{vox1_O,vox1_O_cleaned,vox1_E,vox1_E_cleaned,vox1_H,vox1_H_cleaned}.kaldi
#                          (from whichever official lists are in --trials-dir)
# Each data dir: wav.scp utt2spk spk2utt utt2dur; utterance id = spk/video/n (path without extension).
# Fails if a trial speaker is also a vox2_dev speaker, or a trial names an utterance not in data/vox1.
set -euo pipefail
export LC_ALL=C

vox1_root=""     # VoxCeleb1 root holding wav/ (empty: do not prepare data/vox1)
vox2_root=""     # VoxCeleb2 root holding dev/aac or dev/wav (empty: do not prepare data/vox2_dev)
trials_dir=""    # dir with veri_test2.txt, list_test_hard2.txt, ... (empty: the VoxCeleb1 root)
nj=4             # processes reading audio headers for utt2dur
usage="Usage: $0 [options] <data-root>
 e.g.: $0 --vox1-root /corpora/voxceleb1 --vox2-root /corpora/voxceleb2 data"

echo "$0 $*" >&2
. "${0%/*}/../utils/parse_options.sh"

if [ $# -ne 1 ]; then
  printf '%b\n' "$usage" >&2
  exit 1
fi
data_root=$1
[[ $nj =~ ^[1-9][0-9]*$ ]] || { echo "$0: --nj must be a positive integer, got '$nj'" >&2; exit 1; }

if [ -z "$vox1_root" ] && [ -z "$vox2_root" ]; then
  echo "$0: give --vox1-root and/or --vox2-root" >&2
  exit 1
fi
for d in "$vox1_root" "$vox2_root" "$trials_dir"; do
  if [ -n "$d" ] && [ ! -d "$d" ]; then
    echo "$0: no such directory: $d" >&2
    exit 1
  fi
done

args=()
[ -n "$vox1_root" ] && args+=(--vox1-root "$vox1_root")
[ -n "$vox2_root" ] && args+=(--vox2-root "$vox2_root")
[ -n "$trials_dir" ] && args+=(--trials-dir "$trials_dir")
python -m bccmt.bin.prepare_voxceleb "${args[@]}" --nj "$nj" "$data_root"

for set in vox2_dev vox1; do
  if [ -f "$data_root/$set/utt2spk" ]; then
    echo "$0: $data_root/$set: $(wc -l < "$data_root/$set/utt2spk") utterances," \
      "$(wc -l < "$data_root/$set/spk2utt") speakers"
  fi
done
