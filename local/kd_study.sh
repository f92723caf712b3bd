#!/usr/bin/env bash
# Paired-seed study of self-attention-map KD: does distilling BC-CMT-Base's maps help BC-CMT-Tiny?
#
# From one trained teacher it trains, for every seed, a plain student (--plain-config) and one KD
# student per arm (--kd-config plus the arm's kd.* overrides). The members of a pair share seed,
# data order, schedule and everything else (train.seed=<seed>, the common --train-opts); they
# differ only in KD. Every student embeds <backend-data> (with speaker means) and <eval-data> and is
# scored with each backend on every trial list, by local/extract_embeddings.sh and local/score.sh
# exactly as stages 4-5 of run.sh do. Then `python -m bccmt.bin.kd_study report` writes
# <study-dir>/results.json and RESULTS.md: per-seed EER, minDCF(0.01), minDCF(0.001); mean +/- std
# per arm; the paired difference arm - plain with 95% CIs (paired t, and a seeded bootstrap over
# seeds); the relative change beside the paper's -15.5%; diagnostics (the teacher's map entropy
# relative to log(Tk), the KD terms' share of the loss, and the student-teacher map KL after every
# epoch for KD and plain students alike). Metrics are recomputed from the kept score files.
#
# The loss (bccmt/kd/teacher.py, Distiller.loss):
#   L = L_AAM + kd.weight * L_attn + kd.embedding_weight * L_emb,
#   L_attn = KL(teacher || student) per head and query row (kd.loss=mse: squared error) of the
#   paired maps (default: the last block of each stage), averaged over the pairs; the teacher is
#   frozen (eval mode, strict load, checked above chance) and sees the student's very crop.
#   Plain students load the teacher only for the map-KL monitor (kd.monitor_utts), which runs in
#   eval mode on fixed crops after each epoch, never enters the loss and consumes no randomness.
#
# Layout: <study-dir>/study.yaml (settings and arms; a rerun must keep the settings),
#   runs/<arm>/seed<N>/ (exp dirs: train.log, models/, embeddings/, scores/; study.done last),
#   diagnostics/, results.json, RESULTS.md. Reruns skip finished runs and resume unfinished
#   training; new seeds or arms (another --arms file) join the same study and its report.
#
# Full study (in egs/voxceleb after run.sh stages 0-4; N = 5 pairs, arm "kd" = the KD config):
#   local/kd_study.sh exp/bccmt_base data/vox2_dev_aug data/vox2_dev_backend data/vox1 exp/kd_study
# Ablations (3 paired seeds each, added to the same study: seeds 1-3 of plain and kd are reused):
#   local/kd_study.sh --num-seeds 3 --arms conf/kd_study_ablations.txt exp/bccmt_base \
#     data/vox2_dev_aug data/vox2_dev_backend data/vox1 exp/kd_study
#   The teacher_mid arm needs exp/bccmt_base/models/epoch_30.pt, i.e. a teacher trained with
#   train.keep_every 10 (conf/bccmt_base.yaml) or 5, or keep_last >= its epochs; without it the
#   study stops at once, naming the checkpoints that were kept. A teacher checkpoint still at
#   chance is refused by the KD teacher check (kd.check_p_value), and that arm's runs stay unfinished.
# From the recipe: bash run.sh --kd-study true [--kd-study-opts "--num-seeds 3"] (after stage 6).
#
# Wall time (2-core CPU). Measured in quick mode (--quick true, 1-epoch students on the quick
# corpus, --nj 1, 1 thread, a loaded machine): 50 s per pair (plain 22 s, kd 28 s), 2 pairs plus
# setup and report 1 min 48 s. Default mini corpus, estimated from the default run's stage times
# (README: KD student 2 min 29 s, plain 1 min 8 s, ~45 s of extraction per student) plus the
# monitor (~10 s per student): ~5.5 min per pair, so the full study (N = 5) ~30 min and the
# ablations (7 arms x 3 seeds of KD students, the plain and kd runs reused) ~75 min.
set -euo pipefail
export LC_ALL=C

num_seeds=5  # paired seeds: train.seed = first_seed .. first_seed + num_seeds - 1
first_seed=1  # the first seed
arms=""  # arms file, lines "<name> [kd.key=value ...]" (empty: one arm "kd" without overrides)
kd_config=conf/bccmt_tiny_kd.yaml  # config of the KD students
plain_config=conf/bccmt_tiny.yaml  # config of the plain students (identical but for kd:)
train_opts=""  # --set overrides for every student (both arms), e.g. "train.epochs=12"
backends="cosine plda"  # local/score.sh backends
trials=""  # trial lists to score (empty: every <eval-data>/trials/*.kaldi)
monitor_utts=64  # fixed training crops of the map-KL monitor and the teacher entropy
quick=false  # smoke run: 1 epoch of 32 crops per student, teacher check logged only
nj=2  # parallel embedding-extraction jobs
cmd=run.py  # job runner for extraction (see cmd.sh)
train_threads=2  # torch threads of each training process
jobs=1  # students run side by side (e.g. 2 with --train-threads 1 on 2 cores); logs in runs/*/seed*/study.log
device=auto  # training device: auto (cuda if available), cpu or cuda
usage="Usage: $0 [options] <teacher-exp> <train-data> <backend-data> <eval-data> <study-dir>
 e.g.: $0 exp/bccmt_base data/vox2_dev_aug data/vox2_dev_backend data/vox1 exp/kd_study
       $0 --num-seeds 3 --arms conf/kd_study_ablations.txt exp/bccmt_base data/vox2_dev_aug data/vox2_dev_backend data/vox1 exp/kd_study"

echo "$0 $*" >&2
. "${0%/*}/../utils/parse_options.sh"

if [ $# -ne 5 ]; then
  printf '%b\n' "$usage" >&2
  exit 1
fi
teacher=$1
train_data=$2
backend_data=$3
eval_data=$4
study_dir=$5
[[ $nj =~ ^[1-9][0-9]*$ ]] || { echo "$0: --nj must be a positive integer, got '$nj'" >&2; exit 1; }

log() { echo "$(date '+%F %T') [kd_study.sh] $*" >&2; }

for f in "$teacher/config.yaml" "$teacher/models/final.pt" "$train_data/feats.scp" \
  "$train_data/fbank.yaml" "$backend_data/utt2spk" "$eval_data/utt2spk" "$kd_config" \
  "$plain_config" ${arms:+"$arms"}; do
  [ -f "$f" ] || { echo "$0: no such file: $f" >&2; exit 1; }
done
[ -n "$trials" ] || trials=$(ls "$eval_data"/trials/*.kaldi 2>/dev/null || true)
[ -n "$trials" ] || { echo "$0: no trial lists: $eval_data/trials/*.kaldi (or give --trials)" >&2; exit 1; }
for t in $trials; do [ -f "$t" ] || { echo "$0: no such trials file: $t" >&2; exit 1; }; done
[[ $num_seeds =~ ^[1-9][0-9]*$ ]] || { echo "$0: --num-seeds must be a positive integer" >&2; exit 1; }
[[ $first_seed =~ ^[0-9]+$ ]] || { echo "$0: --first-seed must be a non-negative integer" >&2; exit 1; }
if [ "$quick" = true ]; then
  train_opts="train.epochs=1 data.samples_per_epoch=32 train.avg_last=1 kd.check_utts=32 kd.check_p_value=null $train_opts"
fi
backend_set=$(basename "$backend_data")
eval_set=$(basename "$eval_data")

mkdir -p "$study_dir"
setup_opts=(--study-dir "$study_dir" --teacher-exp "$teacher" --kd-config "$kd_config"
  --plain-config "$plain_config" --train-data "$train_data" --backend-data "$backend_data"
  --eval-data "$eval_data" --trials $trials --backends "$backends" --train-opts "$train_opts"
  --monitor-utts "$monitor_utts")
[ -n "$arms" ] && setup_opts+=(--arms-file "$arms")
# One line per student of this call, plain first: "<arm> <its --set overrides but the seed>".
students=$(python -m bccmt.bin.kd_study setup "${setup_opts[@]}")

run_student() {  # <arm> <seed> <override>...
  local arm=$1 seed=$2; shift 2
  local dir=$study_dir/runs/$arm/seed$seed conf=$kd_config t0 t1 d
  [ "$arm" = plain ] && conf=$plain_config
  if [ -f "$dir/study.done" ]; then
    log "$dir: finished, skipped"
    return 0
  fi
  log "train $arm seed $seed ($conf $*) -> $dir"
  t0=$(date +%s)
  python -m bccmt.bin.train --config "$conf" --train-data "$train_data" --exp-dir "$dir" \
    --teacher-exp "$teacher" --num-threads "$train_threads" --device "$device" \
    --set "$@" train.seed="$seed"
  t1=$(date +%s)
  for d in "$backend_data" "$eval_data"; do
    log "embeddings: $dir on $d"
    local/extract_embeddings.sh --nj "$nj" --cmd "$cmd" \
      $( [ "$d" = "$backend_data" ] && echo --spk-mean true ) "$dir" "$d" "$dir/embeddings/$(basename "$d")"
  done
  log "scoring $dir with $backends"
  local/score.sh --backends "$backends" --train-set "$backend_set" --eval-set "$eval_set" "$dir" $trials
  local sets="$*"
  printf "arm: %s\nseed: %s\noverrides: '%s'\nseconds_train: %s\nseconds_total: %s\nfinished: '%s'\n" \
    "$arm" "$seed" "${sets//\'/\'\'}" $((t1 - t0)) $(($(date +%s) - t0)) "$(date '+%F %T')" \
    > "$dir/study.done.tmp"
  mv "$dir/study.done.tmp" "$dir/study.done"
}

[[ $jobs =~ ^[1-9][0-9]*$ ]] || { echo "$0: --jobs must be a positive integer" >&2; exit 1; }
pids=()
for seed in $(seq "$first_seed" $((first_seed + num_seeds - 1))); do
  while read -r -a student <&3; do  # fd 3: the training and extraction commands keep stdin
    if [ "$jobs" -eq 1 ]; then
      run_student "${student[0]}" "$seed" "${student[@]:1}"
      continue
    fi
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
    dir=$study_dir/runs/${student[0]}/seed$seed
    mkdir -p "$dir"
    log "started ${student[0]} seed $seed in the background (log: $dir/study.log)"
    run_student "${student[0]}" "$seed" "${student[@]:1}" > "$dir/study.log" 2>&1 </dev/null &
    pids+=($!)
  done 3<<< "$students"
done
for pid in ${pids[@]+"${pids[@]}"}; do wait "$pid" || true; done  # failures: the count below

n_arms=$(grep -c . <<< "$students")
n_done=0
missing=""
for seed in $(seq "$first_seed" $((first_seed + num_seeds - 1))); do
  for arm in $(cut -d' ' -f1 <<< "$students"); do
    if [ -f "$study_dir/runs/$arm/seed$seed/study.done" ]; then
      n_done=$((n_done + 1))
    else
      missing="$missing $study_dir/runs/$arm/seed$seed"
    fi
  done
done
[ "$n_done" -eq $((n_arms * num_seeds)) ] || {
  echo "$0: $n_done of $((n_arms * num_seeds)) students finished; unfinished (see study.log or train.log there):$missing" >&2
  exit 1
}
log "report: $study_dir/{results.json,RESULTS.md}"
python -m bccmt.bin.kd_study report --study-dir "$study_dir" > /dev/null
log "done: $n_done students (plain and $((n_arms - 1)) KD arm(s) x $num_seeds seeds); $study_dir/RESULTS.md"
