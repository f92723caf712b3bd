"""The Python side of local/kd_study.sh (a paired-seed KD study; see that script for the recipe).

  python -m bccmt.bin.kd_study setup --study-dir D --teacher-exp T --kd-config C --plain-config P \\
      --train-data X --backend-data B --eval-data E --trials t1.kaldi [t2 ...] \\
      [--backends "cosine plda"] [--train-opts "k=v ..."] [--monitor-utts 64] [--arms-file F]
      checks or makes D/study.yaml, records the arms (F, or the single arm "kd" without
      overrides) and prints one line per student of this call, "plain" first:
      <arm> <every --set override of its students but train.seed>
  python -m bccmt.bin.kd_study report --study-dir D
      recomputes every finished run's metrics from its score files and writes D/results.json and
      D/RESULTS.md (paired CIs, ablations, diagnostics); safe to rerun at any time.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import sys
from pathlib import Path

from bccmt.logging_setup import setup_logging

log = logging.getLogger("bccmt.bin.kd_study")


def _setup(a) -> int:
    from bccmt.studies.kd_study import (MAIN_ARM, PLAIN, arm_overrides, read_arms_file, setup_study,
                                 sha256)

    settings = {
        "teacher_exp": a.teacher_exp, "kd_config": a.kd_config, "plain_config": a.plain_config,
        "kd_config_sha256": sha256(a.kd_config), "plain_config_sha256": sha256(a.plain_config),
        "train_data": a.train_data, "backend_data": a.backend_data, "eval_data": a.eval_data,
        "trials": list(a.trials), "backends": a.backends.split(),
        "train_opts": a.train_opts.split(), "monitor_utts": a.monitor_utts}
    arms = read_arms_file(a.arms_file) if a.arms_file else {MAIN_ARM: []}
    study = setup_study(a.study_dir, settings, arms)
    log.info("%s/study.yaml: arms %s", a.study_dir, ", ".join(study["arms"]))
    for name in [PLAIN, *arms]:
        print(" ".join([name, *arm_overrides(study, name)]))
    return 0


def _report(a) -> int:
    from bccmt.provenance import git_commit
    from bccmt.io import atomic_write
    from bccmt.studies.kd_study_report import render
    from bccmt.studies.kd_study_results import collect, json_safe

    from bccmt.studies.kd_study_results import training_crops

    res = collect(a.study_dir, lambda study: training_crops(
        study["train_data"], study["kd_config"], study["train_opts"], study["monitor_utts"]))
    commit = git_commit(Path(__file__).resolve().parents[2])
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    res.update(commit=commit, date=date)
    with atomic_write(Path(a.study_dir) / "results.json", encoding="utf-8") as f:
        json.dump(json_safe(res), f, indent=1)
    text = render(res, commit, date)
    with atomic_write(Path(a.study_dir) / "RESULTS.md", encoding="utf-8") as f:
        f.write(text)
    print(text)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("setup", help="check/make <study-dir>/study.yaml; print this call's arms")
    s.add_argument("--study-dir", required=True)
    for name in ("teacher-exp", "kd-config", "plain-config", "train-data", "backend-data",
                 "eval-data"):
        s.add_argument(f"--{name}", required=True)
    s.add_argument("--trials", nargs="+", required=True, help="Kaldi trial lists to score")
    s.add_argument("--backends", default="cosine plda", help="local/score.sh backends")
    s.add_argument("--train-opts", default="", help="--set overrides of every student")
    s.add_argument("--monitor-utts", type=int, default=64, help="crops of the map-KL monitor")
    s.add_argument("--arms-file", help="lines '<name> [kd.key=value ...]' (default: arm kd)")
    r = sub.add_parser("report", help="write <study-dir>/results.json and RESULTS.md")
    r.add_argument("--study-dir", required=True)
    a = p.parse_args(argv)
    setup_logging()
    if a.command == "setup" and a.monitor_utts < 1:
        p.error("--monitor-utts must be >= 1 (the diagnostics need it)")

    from bccmt.studies.kd_study import StudyError
    from bccmt.exp import CheckpointError

    try:
        return _setup(a) if a.command == "setup" else _report(a)
    except (StudyError, CheckpointError, ValueError, OSError) as e:
        log.error("%s", e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
