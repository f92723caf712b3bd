#!/usr/bin/env bash
# BC-CMT speaker verification on VoxCeleb (or the built-in mini corpus), Kaldi style.
#
#   stage 0  data: mini corpus (unless corpus roots are given) -> data/{vox2_dev,vox1}, trials
#   stage 1  augmentation (reverb, noise, music, babble) + 80-dim fbank -> fbank/, feats.scp
#   stage 2  teacher: BC-CMT-Base
#   stage 3  students: BC-CMT-Tiny with self-attention-map KD, and without KD (same seed/schedule)
#   stage 4  embeddings (x-vector style ark/scp) for every model and set
#   stage 5  scoring: cosine, AS-norm, LDA+PLDA (local/score.sh)
#   stage 6  EER / minDCF, RESULTS.md, DET plot
#   stage 7  export (ONNX fp32 + int8, TorchScript; parity-checked), accuracy of the exported models
#            from audio with the `bccmt` command and with sherpa-onnx, latency table (not run by
#            default: --stop-stage 7)
set -euo pipefail

stage=0                # first stage to run
stop_stage=6           # last stage to run
quick=false            # tiny corpus and short schedules (CI); works in quick/ instead of here
corpus_conf=""         # stage 0 corpus YAML: empty = conf/mini_corpus.yaml (--quick: conf/mini_corpus_quick.yaml); e.g. conf/scale_corpus.yaml (VoxCeleb-size benchmark)
nj=2                   # parallel jobs for corpus synthesis, fbank and embedding extraction
vox1_root=""           # VoxCeleb1 root (<root>/wav/idXXXXX/...); empty: build the mini corpus
vox2_root=""           # VoxCeleb2 root (<root>/dev/aac/idXXXXX/...m4a); empty: mini corpus
trials_dir=""          # folder holding veri_test2.txt etc.; empty: the VoxCeleb1 root
musan_root=""          # MUSAN root; empty: the mini corpus's synthetic one
rirs_root=""           # RIRS_NOISES root; empty: the mini corpus's synthetic one
aug_subset=""          # augment this many random training utterances per type (empty: all; mini corpus: a quarter)
compress=false         # stage 1: Kaldi-compressed features (copy-feats --compress=true): ~1/4 of the disk (docs/scale.md)
backend_utts=""        # embed this many random training utterances for the backends (mean, AS-norm cohort, LDA/PLDA; empty: all; mini corpus: half)
with_ecapa=false       # also train and score the ECAPA-TDNN (C=512) peer
backends="cosine asnorm plda"  # scoring backends for stage 5
seed=1234              # the one seed: corpus, augmentation, backend subset and training
train_threads=2        # torch threads of the teacher's training process (stage 2)
student_jobs=2         # stage 3: students trained side by side, 1 thread each (1: in turn, train_threads)
int8_method=dynamic    # stage 7: onnxruntime int8 quantization, dynamic or static (calibrated on training features)
latency_quick=false    # stage 7: a smoke-test latency sweep (1 and 10 s, 1 thread, median of 3) instead of the full one
train_conf=""          # folder of the training configs: empty = conf (mini corpus) or conf/voxceleb (corpus roots)
kd_study=false         # after the stages: paired-seed KD study (local/kd_study.sh) -> $exp/kd_study
kd_study_opts=""       # more local/kd_study.sh options, e.g. "--num-seeds 3 --arms conf/kd_study_ablations.txt"

usage="Usage: $0 [options]
 e.g.: $0 --stage 0 --stop-stage 6
       $0 --stage 7 --stop-stage 7      # export, then the exported models' accuracy and latency
       $0 --quick true
       $0 --corpus-conf conf/scale_corpus.yaml --stop-stage 5   # VoxCeleb-size synthetic corpus (scale benchmark)
       $0 --stage 8 --kd-study true    # only the KD study (stages 0-4 done before)
       $0 --vox1-root /data/VoxCeleb1 --vox2-root /data/VoxCeleb2 --musan-root /data/musan --rirs-root /data/RIRS_NOISES"

. ./path.sh
. utils/parse_options.sh
[ $# -eq 0 ] || { echo "$0: unexpected arguments: $*" >&2; echo -e "$usage" >&2; exit 1; }
. ./cmd.sh

log() { echo "$(date '+%F %T') [run.sh stage $1] ${*:2}"; }

if [ "$quick" = true ]; then
  work=quick; [ -n "$corpus_conf" ] || corpus_conf=conf/mini_corpus_quick.yaml
else
  work=.; [ -n "$corpus_conf" ] || corpus_conf=conf/mini_corpus.yaml
fi
[ -f "$corpus_conf" ] || { echo "$0: no such corpus config: $corpus_conf (--corpus-conf)" >&2; exit 1; }
data=$work/data; exp=$work/exp; fbank=$work/fbank; mini=$work/mini_corpus
mkdir -p "$data" "$exp" "$fbank"

if [ -z "$vox1_root" ] && [ -z "$vox2_root" ]; then
  use_mini=true
  vox1_root=$mini/voxceleb1; vox2_root=$mini/voxceleb2
  [ -n "$musan_root" ] || musan_root=$mini/musan
  [ -n "$rirs_root" ] || rirs_root=$mini/rirs_noises
elif [ -n "$vox1_root" ] && [ -n "$vox2_root" ]; then
  use_mini=false
else
  echo "$0: give both --vox1-root and --vox2-root, or neither (mini corpus)" >&2; exit 1
fi

# Two training scales, both first-class: the mini corpus's CPU schedules (conf/*.yaml) and the
# VoxCeleb-scale GPU schedules (conf/voxceleb/*.yaml); each folder has one file per model.
if [ -z "$train_conf" ]; then
  if [ "$use_mini" = true ]; then train_conf=conf; else train_conf=conf/voxceleb; fi
fi
for m in bccmt_base bccmt_tiny bccmt_tiny_kd; do
  [ -f "$train_conf/$m.yaml" ] || { echo "$0: no training config $train_conf/$m.yaml (--train-conf)" >&2; exit 1; }
done
echo "$(date '+%F %T') [run.sh] training configs: $train_conf/ ($([ "$use_mini" = true ] && echo mini corpus || echo corpus roots given))"

teacher=bccmt_base
students="bccmt_tiny_kd bccmt_tiny"
models="$teacher $students"
[ "$with_ecapa" = true ] && models="$models ecapa_tdnn"
model_exps=()
for m in $models; do model_exps+=("$exp/$m"); done
train_set=vox2_dev
eval_set=vox1

# The training utterances embedded for the backends: a random subset (stage 4) or the whole set.
backend_set=$train_set
if [ -n "$backend_utts" ] || [ "$use_mini" = true ]; then backend_set=${train_set}_backend; fi

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  if [ "$use_mini" = true ]; then
    log 0 "mini corpus ($corpus_conf) -> $mini"
    local/make_mini_corpus.sh --nj $nj --seed $seed --config $corpus_conf $mini
  fi
  log 0 "VoxCeleb roots $vox1_root, $vox2_root -> $data/{$train_set,$eval_set}"
  prep_opts=()
  [ -n "$trials_dir" ] && prep_opts+=(--trials-dir "$trials_dir")
  local/prepare_voxceleb.sh --nj $nj --vox1-root "$vox1_root" --vox2-root "$vox2_root" "${prep_opts[@]}" $data
  for d in $train_set $eval_set; do validate_data_dir.py --no-feats $data/$d; done
  log 0 "done: $(wc -l < $data/$train_set/utt2spk) training and $(wc -l < $data/$eval_set/utt2spk) evaluation utterances"
fi

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  log 1 "augmentation of $data/$train_set (MUSAN $musan_root, RIRS $rirs_root)"
  aug_opts=(--nj $nj --cmd "$cmd" --seed $seed --musan-root "$musan_root" --rirs-root "$rirs_root")
  if [ -z "$aug_subset" ] && [ "$use_mini" = true ]; then
    aug_subset=$(( $(wc -l < $data/$train_set/utt2spk) / 4 ))  # short CPU schedules learn faster
  fi
  [ -n "$aug_subset" ] && aug_opts+=(--subset $aug_subset)
  local/augment_data_dir.sh "${aug_opts[@]}" $data/$train_set
  combine_data_dir.py $data/${train_set}_aug $data/$train_set \
    $data/${train_set}_{reverb,noise,music,babble}
  log 1 "fbank: $data/${train_set}_aug (for training: dithered) and $data/$eval_set (for extraction: no dither)"
  local/make_fbank.sh --nj $nj --cmd "$cmd" --fbank-config conf/fbank.yaml --compress $compress \
    $data/${train_set}_aug $exp/log/make_fbank/${train_set}_aug $fbank/${train_set}_aug
  local/make_fbank.sh --nj $nj --cmd "$cmd" --fbank-config conf/fbank.yaml --compress $compress --purpose extraction \
    $data/$eval_set $exp/log/make_fbank/$eval_set $fbank/$eval_set
  # The clean training utterances take their features from the combined set (same config).
  filter_scp.py $data/$train_set/utt2spk $data/${train_set}_aug/feats.scp > $data/$train_set/feats.scp.tmp
  mv $data/$train_set/feats.scp.tmp $data/$train_set/feats.scp
  filter_scp.py $data/$train_set/utt2spk $data/${train_set}_aug/utt2num_frames > $data/$train_set/utt2num_frames
  cp $data/${train_set}_aug/fbank.yaml $data/$train_set/fbank.yaml
  fix_data_dir.py $data/$train_set   # drops clean utterances whose features were skipped
  if [ $backend_set != $train_set ]; then
    if [ -z "$backend_utts" ] && [ "$use_mini" = true ]; then
      backend_utts=$(( $(wc -l < $data/$train_set/utt2spk) / 2 ))  # saves CPU time for training
    fi
    log 1 "backend set: $backend_utts random utterances of $data/$train_set -> $data/$backend_set"
    subset_data_dir.py --seed $seed $backend_utts $data/$train_set $data/$backend_set
    # Its features at extraction settings, once: otherwise stage 4 recomputes them from wav (the
    # training set's are dithered) for every model.
    local/make_fbank.sh --nj $nj --cmd "$cmd" --fbank-config conf/fbank.yaml --compress $compress --purpose extraction \
      $data/$backend_set $exp/log/make_fbank/$backend_set $fbank/$backend_set
  fi
  for d in ${train_set}_aug $train_set $backend_set $eval_set; do
    validate_data_dir.py --need-feats $data/$d
  done
fi

# Quick mode shortens the schedules with overrides instead of second copies of the configs.
quick_train_opts="train.epochs=1 data.samples_per_epoch=32 train.avg_last=1 train.batch_size=16"  # 16: also for conf/voxceleb (256)
quick_kd_opts="kd.check_utts=32 kd.check_p_value=null"

train_model() {  # <config-name> <exp-name> [extra train.py options]
  local conf=$1 name=$2; shift 2
  local sets=(train.seed=$seed)
  if [ "$quick" = true ]; then
    sets+=($quick_train_opts)
    [ $conf = bccmt_tiny_kd ] && sets+=($quick_kd_opts)
  fi
  python -m bccmt.bin.train --config $train_conf/$conf.yaml --train-data $data/${train_set}_aug \
    --exp-dir $exp/$name --num-threads $train_threads "$@" --set "${sets[@]}"
}

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  log 2 "teacher $teacher: $data/${train_set}_aug -> $exp/$teacher"
  train_model bccmt_base $teacher
fi

# Stage 3 trainings: "<config> <exp-name> [train.py options]" per line. Small models gain little
# from a second thread (bccmt.bin.benchmark_training), so with student_jobs=2 they run side by side,
# 1 thread each, their console output in $exp/log/train_<name>.log.
stage3_jobs="bccmt_tiny_kd bccmt_tiny_kd --teacher-exp $exp/$teacher
bccmt_tiny bccmt_tiny"
[ "$with_ecapa" = true ] && stage3_jobs="$stage3_jobs
ecapa_tdnn ecapa_tdnn"

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  [[ "$student_jobs" =~ ^[1-9][0-9]*$ ]] || { echo "$0: --student-jobs must be >= 1" >&2; exit 1; }
  log 3 "students (bccmt_tiny_kd with teacher $exp/$teacher; bccmt_tiny without KD, same seed and schedule)"
  if [ $student_jobs -eq 1 ]; then
    while read -r conf name opts; do
      log 3 "$conf -> $exp/$name"
      train_model $conf $name $opts
    done <<< "$stage3_jobs"
  else
    mkdir -p $exp/log
    pids=() names=()
    while read -r conf name opts; do
      while [ $(jobs -rp | wc -l) -ge $student_jobs ]; do wait -n || true; done
      log 3 "$conf -> $exp/$name (1 thread; console: $exp/log/train_$name.log)"
      train_threads=1 train_model $conf $name $opts > $exp/log/train_$name.log 2>&1 &
      pids+=($!) names+=($name)
    done <<< "$stage3_jobs"
    failed=""
    for i in "${!pids[@]}"; do
      wait ${pids[$i]} || failed="$failed ${names[$i]}"
    done
    if [ -n "$failed" ]; then
      for n in $failed; do echo "$0: training $n failed; last lines of $exp/log/train_$n.log:" >&2
        tail -n 5 $exp/log/train_$n.log >&2; done
      exit 1
    fi
  fi
  log 3 "done: $(for n in $(cut -d' ' -f2 <<< "$stage3_jobs"); do printf '%s ' $exp/$n/models/final.pt; done)"
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  validate_data_dir.py --need-feats $data/$backend_set  # made in stage 1
  for m in $models; do
    for d in $backend_set $eval_set; do
      log 4 "embeddings: $exp/$m on $data/$d -> $exp/$m/embeddings/$d"
      local/extract_embeddings.sh --nj $nj --cmd "$cmd" $( [ $d = $backend_set ] && echo --spk-mean true ) \
        $exp/$m $data/$d $exp/$m/embeddings/$d
    done
  done
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  trials=$(ls $data/$eval_set/trials/*.kaldi)
  for m in $models; do
    log 5 "scoring $exp/$m with $backends"
    local/score.sh --backends "$backends" --train-set $backend_set $exp/$m $trials
  done
fi

if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
  log 6 "report -> $work/RESULTS.md"
  python -m bccmt.bin.report --exps "${model_exps[@]}" --out $work/RESULTS.md
fi

if [ $stage -le 7 ] && [ $stop_stage -ge 7 ]; then
  export_opts=(--int8-method $int8_method)
  [ $int8_method = static ] && export_opts+=(--calib-feats $data/$train_set/feats.scp)
  for m in $models; do
    log 7 "$exp/$m: export (ONNX fp32 and int8 $int8_method, TorchScript; parity), then the exported models' embeddings and scores (bccmt embed fp32/int8, sherpa-onnx)"
    local/export_model.sh "${export_opts[@]}" --backends "$backends" $exp/$m $data/$backend_set $data/$eval_set
  done
  log 7 "latency (batch 1; meaningful on an idle machine) -> $exp/export_latency.md, $work/RESULTS.md"
  python -m bccmt.bin.benchmark_export --exps "${model_exps[@]}" --out $exp/export_latency.md \
    --results $work/RESULTS.md $( [ "$latency_quick" = true ] && echo --quick )
  log 7 "accuracy of the exported models; int8 is the default only within 0.2 EER points and faster"
  python -m bccmt.bin.export_report --exps "${model_exps[@]}" --out $exp/export_accuracy.md \
    --latency $exp/export_latency.json --results $work/RESULTS.md
fi

# Beside the stages: does attention-map KD help? N paired seeds from this teacher (see the header of
# local/kd_study.sh); a rerun skips finished students. Quick mode: 2 pairs of 1-epoch students.
if [ "$kd_study" = true ]; then
  log study "paired-seed KD study from $exp/$teacher -> $exp/kd_study"
  study_opts=(--nj $nj --cmd "$cmd" --train-threads $train_threads
    --kd-config $train_conf/bccmt_tiny_kd.yaml --plain-config $train_conf/bccmt_tiny.yaml)
  [ "$quick" = true ] && study_opts+=(--quick true --num-seeds 2)
  # shellcheck disable=SC2086  # kd_study_opts holds several options
  local/kd_study.sh "${study_opts[@]}" $kd_study_opts $exp/$teacher $data/${train_set}_aug \
    $data/$backend_set $data/$eval_set $exp/kd_study
fi
