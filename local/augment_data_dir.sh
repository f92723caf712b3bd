#!/usr/bin/env bash
# Stage 1: Kaldi-style offline augmentation of a training data dir (egs/voxceleb/v2 stage 2).
# Makes <src>_reverb, <src>_noise, <src>_music and <src>_babble: one copy of each utterance (or of
# --subset random ones, chosen per type) with the id <utt>-<type> and the same speaker.
#   reverb  simulated RIR from RIRS_NOISES smallroom/mediumroom (equal weight), direct-path aligned
#   noise   MUSAN noise, foreground, one every 1 s, SNR 15/10/5/0 dB
#   music   MUSAN music, background, SNR 15/10/8/5 dB
#   babble  3-7 MUSAN speech files, background, SNR 20/17/15/13 dB each
# (details: bccmt/augment/mix.py). Each output dir holds wav.scp, utt2spk, spk2utt, utt2dur, aug_info
# (`<utt> <type> <source> <snr_db|-> <at_s> <offset_s>`, one line per source applied), log/, and
# wav/<utt>.wav: the augmented audio as 16-bit wav, so stage 1's fbank reads it like any data.
# Disk: about 1x the training audio (as 16-bit wav) per type. Full VoxCeleb2 dev (~2,300 h) would
# need ~265 GB per type, so use --subset on real data (Kaldi keeps 1M of the 5M augmented
# utterances; e.g. --subset 250000 per type is ~60 GB per type).
# Results depend only on (--seed, type, utterance id), not on --nj. A type whose <dir>/.done holds
# the same options (and source checksum) is skipped; otherwise its dir is removed and redone.
set -euo pipefail
export LC_ALL=C

nj=2                                # parallel jobs per type
cmd=run.py                          # job runner (egs/voxceleb/cmd.sh sets it)
seed=1234                           # seed; each utterance's choices come from (seed, type, utt id)
subset=""                           # augment only this many random utterances per type (empty: all)
types="reverb noise music babble"   # which augmented copies to make
musan_root=""                       # MUSAN root: <musan>/{music,noise,speech}/<source>/*.wav
rirs_root=""                        # RIRS_NOISES root: <rirs>/simulated_rirs/{small,medium}room/Room*/Room*-*.wav
max_fail_fraction=0.05              # fail if more than this fraction of source audio is unreadable
usage="Usage: $0 [options] --musan-root <musan> --rirs-root <rirs> <src-data-dir>
 e.g.: $0 --nj 2 --musan-root mini_corpus/musan --rirs-root mini_corpus/rirs_noises data/vox2_dev
       $0 --subset 250000 --musan-root /data/musan --rirs-root /data/RIRS_NOISES data/vox2_dev
 writes data/vox2_dev_{reverb,noise,music,babble}"

echo "$0 $*" >&2
. "${0%/*}/../utils/parse_options.sh"

if [ $# -ne 1 ]; then
  printf '%b\n' "$usage" >&2
  exit 1
fi
src=${1%/}
die() { echo "$0: $*" >&2; exit 1; }
[[ $nj =~ ^[1-9][0-9]*$ ]] || die "--nj must be a positive integer, got '$nj'"

[ -n "$src" ] || die "empty source data dir"
for f in "$src/wav.scp" "$src/utt2spk"; do
  [ -f "$f" ] || die "no such file $f"
done
[ -z "$subset" ] || [[ $subset =~ ^[1-9][0-9]*$ ]] || die "--subset must be empty or a positive integer, got '$subset'"
[[ $seed =~ ^-?[0-9]+$ ]] || die "--seed must be an integer, got '$seed'"
need_musan=false; need_rirs=false
for t in $types; do
  case $t in
    reverb) need_rirs=true ;;
    noise|music|babble) need_musan=true ;;
    *) die "unknown type '$t' in --types (valid: reverb noise music babble)" ;;
  esac
done
[ -n "$types" ] || die "--types is empty"
if [ "$need_musan" = true ]; then
  [ -n "$musan_root" ] || die "give --musan-root: <musan>/{music,noise,speech}/<source>/*.wav"
  [ -d "$musan_root" ] || die "MUSAN root $musan_root is not a directory; expected <musan>/{music,noise,speech}/<source>/*.wav"
  musan_root=$(cd "$musan_root" && pwd)
fi
if [ "$need_rirs" = true ]; then
  [ -n "$rirs_root" ] || die "give --rirs-root: <rirs>/simulated_rirs/{smallroom,mediumroom,largeroom}/Room*/Room*-*.wav"
  [ -d "$rirs_root" ] || die "RIRS_NOISES root $rirs_root is not a directory; expected <rirs>/simulated_rirs/{smallroom,mediumroom,largeroom}/Room*/Room*-*.wav"
  rirs_root=$(cd "$rirs_root" && pwd)
fi

validate_data_dir.py --no-feats "$src" >/dev/null
# The source layouts are checked once here (clear message) rather than in every job.
# shellcheck disable=SC2086
python -m bccmt.bin.augment_data_dir --check-sources --type $types --musan-root "$musan_root" \
  --rirs-root "$rirs_root" || die "missing augmentation sources (see above)"

n_src=$(wc -l < "$src/wav.scp")
n_want=$n_src
if [ -n "$subset" ] && [ "$subset" -lt "$n_src" ]; then n_want=$subset; fi
if [ "$nj" -gt "$n_want" ]; then
  echo "$0: only $n_want utterances per type: using $n_want jobs instead of $nj"
  nj=$n_want
fi
src_sum=$(cat "$src/wav.scp" "$src/utt2spk" | md5sum | cut -d' ' -f1)
eval "cmd_arr=($cmd)"  # cmd may hold quoted options, e.g. run.py --slurm-opts '-p cpu'

for t in $types; do
  out=${src}_$t
  root=$musan_root; [ "$t" = reverb ] && root=$rirs_root
  opts="version=1 type=$t seed=$seed subset=$subset root=$root src=$(cd "$src" && pwd) src_md5=$src_sum"
  if [ -f "$out/.done" ] && [ "$(cat "$out/.done")" = "$opts" ]; then
    echo "$0: $out: already done with the same options ($(wc -l < "$out/utt2spk") utterances); skipping"
    continue
  fi
  start=$SECONDS
  rm -rf "$out"
  mkdir -p "$out/log" "$out/tmp"
  subset_opt=()
  [ -n "$subset" ] && subset_opt=(--subset "$subset")
  if ! "${cmd_arr[@]}" JOB=1:"$nj" "$out/log/augment.JOB.log" \
      python -m bccmt.bin.augment_data_dir --type "$t" --seed "$seed" "${subset_opt[@]}" \
        --musan-root "$musan_root" --rirs-root "$rirs_root" --job JOB --num-jobs "$nj" \
        --wav-dir "$out/wav" "$src" "$out/tmp/part.JOB"; then
    die "augmentation ($t) of $src failed; see $out/log/augment.*.log"
  fi
  for n in $(seq "$nj"); do
    [ -f "$out/tmp/part.$n.wav.scp" ] || die "job $n left no $out/tmp/part.$n.wav.scp; see $out/log/augment.$n.log"
  done
  for f in wav.scp utt2spk utt2dur; do
    cat "$out"/tmp/part.*."$f" | sort -k1,1 > "$out/$f"
  done
  cat "$out"/tmp/part.*.aug_info | sort -s -k1,1 > "$out/aug_info"
  utt2spk_to_spk2utt.py "$out/utt2spk" > "$out/spk2utt"
  n_out=$(wc -l < "$out/wav.scp")
  n_skip=$(cat "$out"/tmp/part.*.skipped | wc -l)
  n_resc=$(cat "$out"/tmp/part.*.rescaled | wc -l)
  if [ $((n_out + n_skip)) -ne "$n_want" ]; then
    die "$out: expected $n_want utterances, got $n_out augmented + $n_skip skipped"
  fi
  if [ "$n_skip" -gt 0 ]; then
    cat "$out"/tmp/part.*.skipped | sort > "$out/log/skipped"
    echo "$0: $n_skip source utterances had unreadable audio (list: $out/log/skipped)" >&2
    if awk -v s="$n_skip" -v n="$n_want" -v f="$max_fail_fraction" 'BEGIN { exit !(s > f * n) }'; then
      die "more than a fraction $max_fail_fraction of $src could not be read"
    fi
  fi
  [ "$n_resc" -eq 0 ] || cat "$out"/tmp/part.*.rescaled | sort > "$out/log/rescaled"
  validate_data_dir.py --no-feats "$out" >/dev/null
  rm -rf "$out/tmp"
  echo "$opts" > "$out/.done.tmp"
  mv "$out/.done.tmp" "$out/.done"
  echo "$0: $out: $n_out $t copies of $n_want utterances of $src ($n_skip skipped," \
    "$n_resc rescaled to avoid clipping; $nj jobs, $((SECONDS - start)) s)"
done
