"""A bounded number of steps of the real training command, measured (for the scale benchmark).

``train_steps`` runs ``python -m bccmt.bin.train`` (the command stages 2-3 run) in a child process
on a recipe config with the caller's ``--set`` overrides plus three of its own: one epoch of
``steps * train.batch_size`` crops (so exactly ``steps`` optimiser steps) and a log line per step.
Everything else (optimiser, LR and margin schedules, SpecAugment, loader workers, the AAM head
sized by the data's speakers, KD with ``teacher``) is the config's. The exp dir is emptied first.

What it returns is read back from the run itself: the per-step loss, lr and margin from the log
lines of <exp>/train.log, the step time as the gap between consecutive step lines (the first step
of an epoch also starts the loader workers and warms the model up, so the median leaves it out),
the number of loader workers from the trainer's "data loader:" line, the AAM head's classes from
the weights in models/final.pt, and the peak RSS of the largest process of the run (``os.wait4``
on the child: ``getrusage`` of the child and of the descendants it waited for, its loader
workers included). Epoch-based schedule keys are not squeezed: a schedule written for 150 epochs
stays in its warm-up (the trainer logs a warning); pass overrides to squeeze it.
"""

from __future__ import annotations

import datetime as dt
import re
import statistics
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from bccmt.studies.measure import log_tail, wait_measured
from bccmt.studies.training_benchmark import BenchmarkError, Root, _launch, root_env, train_command

REPO = Path(__file__).resolve().parents[2]  # the code root the child imports bccmt from
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
_STEP = re.compile(r"\] epoch (\d+) step (\d+)/(\d+) (.+?) lr (\S+) margin (\S+) samples/s ")
_WORKERS = re.compile(r"\] data loader: (\d+) worker processes")


def train_steps(config_path, train_data, exp_dir, steps: int, overrides: Sequence[str] = (),
                teacher=None, *, threads: int = 2, device: str = "cpu",
                log_path: Optional[Path] = None, cwd: Optional[Path] = None) -> Dict[str, Any]:
    """Trains ``steps`` steps of ``config_path`` on ``train_data`` into ``exp_dir`` (emptied
    first); ``teacher``: the KD teacher's exp dir (--teacher-exp). ``threads``: torch threads of
    the training process; ``device``: cpu, cuda or auto. The command's output goes to
    ``log_path`` (default <exp_dir>/stdout.log); it runs in ``cwd`` (default the code root).
    Relative paths are taken relative to this process's working directory.

    Returns {"steps", "batch_size", "workers", "threads", "device", "losses" (per step),
    "loss_first", "loss_last", "terms" ({name: per-step values}: aam, acc, and attn, kd_share
    with KD), "lr_first", "lr_last", "margin_first", "margin_last" (per-step lists under "lrs" and
    "margins"), "step_times_s", "step_time_s" (median after the first step), "crops_per_s"
    (batch / step_time_s), "max_rss_mb", "cpu_s", "wall_s", "num_classes", "exp_dir", "log"}.
    """
    from bccmt.config import load_config

    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    config_path, train_data, exp_dir = (Path(p).resolve() for p in (config_path, train_data,
                                                                       exp_dir))
    teacher = Path(teacher).resolve() if teacher is not None else None
    if teacher is not None and teacher == exp_dir:
        raise ValueError(f"exp_dir {exp_dir} is the teacher's exp dir (it would be emptied)")
    cfg = load_config(config_path, list(overrides))  # bad overrides fail here, not in the child
    batch = cfg.train.batch_size
    sets = [*overrides, "train.epochs=1", f"data.samples_per_epoch={steps * batch}",
            "train.log_every=1"]
    cmd = train_command(config_path, train_data, exp_dir, threads, sets, teacher, device)
    root = Root("train_steps", Path(cwd).resolve() if cwd else REPO, root_env(REPO, baseline=False))
    log_path = Path(log_path).resolve() if log_path else exp_dir / "stdout.log"
    t0 = time.perf_counter()
    m = wait_measured(_launch(root, cmd, exp_dir, log_path), t0)
    if m.returncode != 0:
        raise BenchmarkError(f"training failed (exit {m.returncode}); see {log_path}:"
                             + log_tail(log_path))
    out = read_steps(exp_dir, steps)
    step_time = statistics.median(out["step_times_s"][1:] or out["step_times_s"])
    return {"steps": steps, "batch_size": batch, "threads": threads, "device": device, **out,
            "loss_first": out["losses"][0], "loss_last": out["losses"][-1],
            "lr_first": out["lrs"][0], "lr_last": out["lrs"][-1],
            "margin_first": out["margins"][0], "margin_last": out["margins"][-1],
            "step_time_s": step_time, "crops_per_s": batch / max(step_time, 1e-9),
            "max_rss_mb": m.max_rss_mb, "cpu_s": m.cpu_s, "wall_s": m.wall_s, "num_classes": _head_classes(exp_dir), "exp_dir": str(exp_dir),
            "log": str(log_path)}


def read_steps(exp_dir: Path, steps: int) -> Dict[str, Any]:
    """Per-step values and gaps from <exp>/train.log (one line per step: train.log_every=1)."""
    from bccmt.exp import ExpLayout

    path = ExpLayout(exp_dir).log
    losses: List[float] = []
    terms: Dict[str, List[float]] = {}
    lrs: List[float] = []
    margins: List[float] = []
    gaps: List[float] = []
    workers, prev = None, None
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stamp = _STAMP.match(line)
        if not stamp:
            continue
        t = dt.datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        m = _WORKERS.search(line)
        if m:
            workers = int(m.group(1))
        m = _STEP.search(line)
        if m:
            vals = m.group(4).split()
            pairs = dict(zip(vals[0::2], (float(v) for v in vals[1::2])))
            losses.append(pairs.pop("loss"))
            for name, value in pairs.items():
                terms.setdefault(name, []).append(value)
            lrs.append(float(m.group(5)))
            margins.append(float(m.group(6)))
            gaps.append(t - prev)
        prev = t
    if len(losses) != steps or workers is None:
        raise BenchmarkError(f"{path}: {len(losses)} step lines (expected {steps})"
                             + ("" if workers is not None else " and no 'data loader:' line"))
    return {"losses": losses, "terms": terms, "lrs": lrs, "margins": margins,
            "step_times_s": gaps, "workers": workers}


def _head_classes(exp_dir: Path) -> int:
    """Rows of the AAM head's weight in models/final.pt: the classes it was trained with."""
    from bccmt.exp import load_final

    return int(load_final(exp_dir)["head_state_dict"]["weight"].shape[0])
