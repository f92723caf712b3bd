#!/usr/bin/env bash
# Stage 1: 80-dim log-Mel fbank for a data dir, in N parallel jobs (like Kaldi's steps/make_fbank.sh).
# Writes <fbank-dir>/raw_fbank_<name>.JOB.{ark,scp,utt2num_frames,skipped,yaml} and, in the data dir,
# feats.scp, utt2num_frames (merged, sorted) and fbank.yaml (the config used, dither included).
# Utterances whose audio is bad (missing, corrupt, truncated, too short, wrong rate, stereo, failing
# pipe) are skipped by the jobs, reported with their reason, and removed from the data dir
# (utils/fix_data_dir.py, originals kept in <data-dir>/.backup/); more than --max-fail-fraction of
# them is an error. A rerun replaces the previous features of this data dir.
set -euo pipefail
export LC_ALL=C

nj=4                                # number of parallel jobs
cmd=run.py                          # job runner (egs/voxceleb/cmd.sh sets it)
fbank_config=conf/fbank.yaml        # FbankConfig YAML
purpose=training                    # training: the config's dither; extraction: dither 0 (eval sets)
max_fail_fraction=0.05              # fail if more than this fraction of utterances was skipped
on_error=skip                       # bad audio in a job: skip (and report) or fail
compress=false                      # true: Kaldi-compressed matrices (copy-feats --compress=true), ~1/4 of the disk
usage="Usage: $0 [options] <data-dir> <log-dir> <fbank-dir>
 e.g.: $0 --nj 8 --purpose extraction data/vox1 exp/make_fbank/vox1 fbank
       $0 --nj 8 --compress true data/vox2_dev_aug exp/make_fbank/vox2_dev_aug fbank"

echo "$0 $*" >&2
. "${0%/*}/../utils/parse_options.sh"

if [ $# -ne 3 ]; then
  printf '%b\n' "$usage" >&2
  exit 1
fi
data=$1
logdir=$2
fbankdir=$3
name=$(basename "$data")
[[ $nj =~ ^[1-9][0-9]*$ ]] || { echo "$0: --nj must be a positive integer, got '$nj'" >&2; exit 1; }
compress_opt=()
[ "$compress" = true ] && compress_opt=(--compress)  # parse_options.sh allows true/false only

for f in "$data/wav.scp" "$data/utt2spk" "$fbank_config"; do
  if [ ! -f "$f" ]; then
    echo "$0: no such file $f" >&2
    exit 1
  fi
done
n_in=$(grep -c "[^[:space:]]" "$data/wav.scp" || true)  # non-empty lines, as the jobs count
if [ "$n_in" -eq 0 ]; then
  echo "$0: $data/wav.scp is empty" >&2
  exit 1
fi
if [ "$nj" -gt "$n_in" ]; then
  echo "$0: only $n_in utterances: using $n_in jobs instead of $nj"
  nj=$n_in
fi
# The config is checked once here (unknown keys, bad values) rather than in every job.
python -m bccmt.bin.compute_fbank --check-config --fbank-config "$fbank_config" || {
  echo "$0: bad feature config $fbank_config (see above)" >&2
  exit 1
}

mkdir -p "$logdir" "$fbankdir"
fbankdir=$(cd "$fbankdir" && pwd)  # feats.scp holds absolute ark paths

# Previous features of this data dir: moved aside / removed, so nothing stale is merged.
for f in feats.scp utt2num_frames fbank.yaml; do
  if [ -f "$data/$f" ]; then
    mkdir -p "$data/.backup"
    mv "$data/$f" "$data/.backup/$f"
  fi
done
rm -f "$fbankdir/raw_fbank_$name".*.{ark,scp,utt2num_frames,skipped,yaml}
rm -f "$logdir/wav_$name".*.scp

split_scps=()
for n in $(seq "$nj"); do
  split_scps+=("$logdir/wav_$name.$n.scp")
done
split_scp.py "$data/wav.scp" "${split_scps[@]}"

eval "cmd_arr=($cmd)"  # cmd may hold quoted options, e.g. run.py --slurm-opts '-p cpu'
if ! "${cmd_arr[@]}" JOB=1:"$nj" "$logdir/make_fbank_$name.JOB.log" \
    python -m bccmt.bin.compute_fbank --fbank-config "$fbank_config" --purpose "$purpose" \
      --on-error "$on_error" "${compress_opt[@]}" "$logdir/wav_$name.JOB.scp" "$fbankdir/raw_fbank_$name.JOB"; then
  echo "$0: feature extraction failed for $data; see $logdir/make_fbank_$name.*.log" >&2
  exit 1
fi

for n in $(seq "$nj"); do
  for s in scp utt2num_frames skipped yaml; do
    if [ ! -f "$fbankdir/raw_fbank_$name.$n.$s" ]; then
      echo "$0: job $n left no $fbankdir/raw_fbank_$name.$n.$s; see $logdir/make_fbank_$name.$n.log" >&2
      exit 1
    fi
  done
done
job_yamls=()
for n in $(seq "$nj"); do job_yamls+=("$fbankdir/raw_fbank_$name.$n.yaml"); done
python -m bccmt.bin.compute_fbank --same-config "${job_yamls[@]}" || {
  echo "$0: the jobs used different feature configs (see above)" >&2
  exit 1
}

# Merge (sorted, unique keys), writing under temp names first.
for s in scp utt2num_frames; do
  out=$data/feats.scp
  [ "$s" = utt2num_frames ] && out=$data/utt2num_frames
  for n in $(seq "$nj"); do cat "$fbankdir/raw_fbank_$name.$n.$s"; done | sort -k1,1 > "$out.tmp"
  if [ "$(cut -d' ' -f1 "$out.tmp" | uniq -d | wc -l)" -ne 0 ]; then
    echo "$0: duplicate utterance ids in $out.tmp: $(cut -d' ' -f1 "$out.tmp" | uniq -d | head -3)" >&2
    exit 1
  fi
done
for n in $(seq "$nj"); do cat "$fbankdir/raw_fbank_$name.$n.skipped"; done | sort > "$logdir/skipped_$name"

n_out=$(wc -l < "$data/feats.scp.tmp")
n_skip=$(wc -l < "$logdir/skipped_$name")
if [ $((n_out + n_skip)) -ne "$n_in" ]; then
  echo "$0: $n_in utterances in, but $n_out with features + $n_skip skipped" >&2
  exit 1
fi
if [ "$n_skip" -gt 0 ]; then
  echo "$0: $n_skip of $n_in utterances had no usable audio (list: $logdir/skipped_$name):" >&2
  head -n 20 "$logdir/skipped_$name" | sed 's/^/  /' >&2
  if [ "$n_skip" -gt 20 ]; then echo "  ... $((n_skip - 20)) more" >&2; fi
  if awk -v s="$n_skip" -v n="$n_in" -v f="$max_fail_fraction" 'BEGIN { exit !(s > f * n) }'; then
    rm -f "$data/feats.scp.tmp" "$data/utt2num_frames.tmp"
    echo "$0: more than a fraction $max_fail_fraction of the utterances failed; $data left" \
      "without features" >&2
    exit 1
  fi
fi
mv "$data/utt2num_frames.tmp" "$data/utt2num_frames"
cp "$fbankdir/raw_fbank_$name.1.yaml" "$data/fbank.yaml.tmp"
mv "$data/fbank.yaml.tmp" "$data/fbank.yaml"
mv "$data/feats.scp.tmp" "$data/feats.scp"
if [ "$n_skip" -gt 0 ]; then
  echo "$0: removing them from $data (fix_data_dir.py; originals in $data/.backup)" >&2
  fix_data_dir.py "$data"
fi
echo "$0: $data: features for $n_out utterances in $fbankdir (config $data/fbank.yaml)"
