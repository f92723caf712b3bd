"""Stages 2-3: train a speaker-embedding model (optionally distilling a teacher's attention maps).

  python -m bccmt.bin.train --config conf/bccmt_tiny.yaml --train-data data/vox2_dev_aug \\
      --exp-dir exp/bccmt_tiny [--teacher-exp exp/bccmt_base] [--init-from ckpt.pt] \\
      [--set train.epochs=2 data.samples_per_epoch=512 ...] [--device auto|cpu|cuda]

Rerunning the same command resumes from exp-dir/models/epoch_N.pt. Multi-GPU / multi-node:
  torchrun --standalone --nproc-per-node=4 -m bccmt.bin.train ... (see bccmt.train.distributed)
Writes exp-dir/{config.yaml,train.log,spk2idx,models/epoch_N.pt,models/final.pt}.
"""

import argparse
import logging
import os
import sys
from pathlib import Path

from bccmt.exp import ExpLayout
from bccmt.logging_setup import setup_logging


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", required=True, type=Path, help="recipe YAML, e.g. conf/bccmt_tiny.yaml")
    p.add_argument("--train-data", required=True, type=Path,
                   help="data dir with feats.scp, utt2spk, utt2num_frames, fbank.yaml")
    p.add_argument("--exp-dir", required=True, type=Path, help="output dir, e.g. exp/bccmt_tiny")
    p.add_argument("--teacher-exp", type=Path, help="trained teacher exp dir (needs kd.enabled)")
    p.add_argument("--init-from", type=Path,
                   help="epoch_N.pt or final.pt: start from these weights only (fine-tuning)")
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[],
                   metavar="KEY=VALUE", help="config overrides, e.g. train.epochs=2 optim.lr=0.01")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda")
    p.add_argument("--num-threads", type=int,
                   help="torch threads per process (overrides train.num_threads; 0 = all cores)")
    args = p.parse_args(argv)

    from bccmt.config import ConfigError, load_config

    rank0 = int(os.environ.get("RANK", "0")) == 0
    overrides = list(args.overrides)
    if args.num_threads is not None:
        overrides.append(f"train.num_threads={args.num_threads}")
    log_file = None
    if rank0:
        args.exp_dir.mkdir(parents=True, exist_ok=True)
        log_file = str(ExpLayout(args.exp_dir).log)
    setup_logging(log_file, level=logging.INFO if rank0 else logging.WARNING)
    log = logging.getLogger("bccmt.bin.train")
    log.info("command: %s", " ".join(sys.argv))
    try:
        cfg = load_config(args.config, overrides)
    except ConfigError as e:
        log.error("%s", e)
        return 2

    from bccmt.kd.teacher import TeacherCheckError
    from bccmt.exp import CheckpointError
    from bccmt.train.data import DataError
    from bccmt.train.trainer import TrainError, run_training

    try:
        result = run_training(cfg, args.train_data, args.exp_dir, args.teacher_exp, args.init_from,
                              args.device, config_file=args.config)
    except (TrainError, DataError, CheckpointError, TeacherCheckError, ConfigError, ValueError) as e:
        log.error("%s", e)
        return 1
    log.info("done: %s", result["final"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
