"""Training throughput benchmark: crops/s of the real training command, per model and thread mode.

Every point runs ``python -m bccmt.bin.train`` (the command the recipe runs) in a subprocess on a
synthetic data dir of random fbank matrices, for ``epochs`` short epochs, and reads the
``samples_per_s`` of the epoch-end log lines (``epoch N done: ... samples_per_s X``); epoch 1 is a
warm-up and the median of the later epochs is reported. Modes:
- ``1t``: one process, 1 torch thread;  ``2t``: one process, 2 threads;
- ``2x1t``: two 1-thread processes started together (two independent trainings side by side);
  the figure is the sum of both processes' crops/s.
Models: ``base`` (BC-CMT-Base alone), ``tiny`` (Tiny alone) and ``tiny_kd`` (Tiny distilling the
``base`` exp trained by the same benchmark, teacher check shortened).

Several code roots can be measured in one run (``--baseline-root``: an older checkout), so the
ratios compare code under the same load. A baseline runs with the environment of this process
minus the variables in ``TUNING_ENV`` (the allocator settings path.sh exports since this benchmark
was written), i.e. as it ran when it was current.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

log = logging.getLogger(__name__)

TUNING_ENV = ("MALLOC_MMAP_MAX_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_",
              "MALLOC_TOP_PAD_", "MALLOC_ARENA_MAX")
MODES = ("1t", "2t", "2x1t")
CONFIGS = {"base": "bccmt_base", "tiny": "bccmt_tiny", "tiny_kd": "bccmt_tiny_kd"}
_RATE = re.compile(r"epoch (\d+) done: .*?samples_per_s ([0-9.eE+-]+)")


class BenchmarkError(RuntimeError):
    """A benchmark point failed; the message names its log."""


@dataclass
class Root:
    """A code root to measure: its label, folder, the environment it runs in, and extra config
    overrides of its training command (e.g. another crop length)."""
    label: str
    path: Path
    env: Dict[str, str]
    sets: Tuple[str, ...] = ()


def make_data_dir(out: Path, fbank_yaml: Path, speakers: int = 40, utts: int = 4,
                  frames: int = 400, seed: int = 0) -> Path:
    """A training data dir of random (frames, 80) float32 matrices: feats.scp, utt2spk, ..."""
    import kaldiio

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    keys = [f"spk{s:03d}-utt{u}" for s in range(speakers) for u in range(utts)]
    with kaldiio.WriteHelper(f"ark,scp:{out / 'feats.ark'},{out / 'feats.scp'}") as writer:
        for key in keys:
            writer(key, (rng.standard_normal((frames, 80)) * 2 - 8).astype(np.float32))
    (out / "utt2spk").write_text("".join(f"{k} {k.split('-')[0]}\n" for k in keys))
    (out / "utt2num_frames").write_text("".join(f"{k} {frames}\n" for k in keys))
    spk2utt = {}
    for k in keys:
        spk2utt.setdefault(k.split("-")[0], []).append(k)
    (out / "spk2utt").write_text("".join(f"{s} {' '.join(u)}\n" for s, u in spk2utt.items()))
    shutil.copy(fbank_yaml, out / "fbank.yaml")
    return out


def train_command(config: Path, data: Path, exp: Path, threads: int, sets: Sequence[str],
                  teacher: Optional[Path] = None, device: str = "cpu") -> List[str]:
    """The recipe's training command (``python -m bccmt.bin.train``) with --set overrides."""
    cmd = [sys.executable, "-m", "bccmt.bin.train", "--config", str(config), "--train-data",
           str(data), "--exp-dir", str(exp), "--num-threads", str(threads), "--device", device]
    if teacher is not None:
        cmd += ["--teacher-exp", str(teacher)]
    return cmd + ["--set", *sets] if sets else cmd


def _train_cmd(root: Root, model: str, data: Path, exp: Path, threads: int, epochs: int,
               crops: int, teacher: Optional[Path]) -> List[str]:
    conf = root.path / "egs" / "voxceleb" / "conf" / f"{CONFIGS[model]}.yaml"
    sets = [f"train.epochs={epochs}", f"data.samples_per_epoch={crops}", "train.avg_last=1",
            "train.seed=1"]
    if teacher is not None:
        sets += ["kd.check_utts=16", "kd.check_p_value=null"]
    return train_command(conf, data, exp, threads, [*sets, *root.sets], teacher)


def _rate(exp: Path) -> float:
    """Median samples_per_s over the epochs after the first, from exp/history.jsonl (from
    train.log's epoch lines only for a --baseline-root checkout older than history.jsonl)."""
    from bccmt.exp import ExpLayout
    from bccmt.train.checkpoint import read_history

    source = ExpLayout(exp).history
    if source.is_file():
        rates = {int(h["epoch"]): float(h["samples_per_s"]) for h in read_history(exp)}
    else:
        source = ExpLayout(exp).log
        text = source.read_text(errors="replace") if source.is_file() else ""
        rates = {int(e): float(r) for e, r in _RATE.findall(text)}
    later = [r for e, r in sorted(rates.items()) if e > 1]
    if not later:
        raise BenchmarkError(f"{source}: no epoch-end rate after epoch 1")
    return statistics.median(later)


def _launch(root: Root, cmd: List[str], exp: Path,
            log_path: Optional[Path] = None) -> subprocess.Popen:
    """Starts cmd in root.path with root.env after emptying exp; its output goes to log_path
    (default exp/stdout.log)."""
    if exp.exists():
        shutil.rmtree(exp)
    exp.mkdir(parents=True)
    log_path = log_path or exp / "stdout.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as out:  # the child holds its own copy of the file
        return subprocess.Popen(cmd, cwd=root.path, env=root.env, stdout=out,
                                stderr=subprocess.STDOUT)


def _wait(procs: Sequence[subprocess.Popen], exps: Sequence[Path]) -> List[float]:
    for p, exp in zip(procs, exps):
        if p.wait() != 0:
            raise BenchmarkError(f"training failed (exit {p.returncode}); see {exp / 'stdout.log'}")
    return [_rate(exp) for exp in exps]


def measure(root: Root, model: str, mode: str, data: Path, work: Path, epochs: int,
            crops: int, teacher: Optional[Path]) -> float:
    """Crops/s of one (root, model, mode) point; 2x1t sums its two processes."""
    copies, threads = (2, 1) if mode == "2x1t" else (1, int(mode[0]))
    exps = [work / f"{root.label}_{model}_{mode}_{i}" for i in range(copies)]
    procs = [_launch(root, _train_cmd(root, model, data, e, threads, epochs, crops, teacher), e)
             for e in exps]
    return sum(_wait(procs, exps))


def cpu_model() -> str:
    """'<model name> x <cores>' from /proc/cpuinfo (or the platform's processor string)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        names = [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")]
        return f"{names[0]}, {len(os.sched_getaffinity(0))} cores"
    except (OSError, IndexError, AttributeError):
        import platform
        return platform.processor() or "unknown CPU"


def with_crop_lengths(roots: Sequence[Root], seconds: Sequence[float]) -> List[Root]:
    """Each root once per crop length (``data.crop_seconds``), labelled ``<label>_<s>s``."""
    return [Root(f"{r.label}_{s:g}s", r.path, r.env, r.sets + (f"data.crop_seconds={s}",))
            for r in roots for s in seconds]


def root_env(path: Path, baseline: bool) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not (baseline and k in TUNING_ENV)}
    env["PYTHONPATH"] = str(path)
    return env


def run(roots: Sequence[Root], modes: Sequence[str], models: Sequence[str], work: Path,
        epochs: int, crops: int, repeats: int) -> Dict[str, Dict[str, List[float]]]:
    """{root label: {"model/mode": [crops/s per repeat]}}. Points are interleaved over the roots
    (root A, root B, then the next point), so a change of load hits every root alike."""
    data = make_data_dir(work / "data", roots[0].path / "egs" / "voxceleb" / "conf" / "fbank.yaml")
    out: Dict[str, Dict[str, List[float]]] = {r.label: {} for r in roots}
    order = ["base"] + [m for m in models if m != "base"]   # the KD teacher is trained first
    for rep in range(repeats):
        for model in order:
            for mode in modes:
                for root in roots:
                    teacher = work / f"{root.label}_base_1t_0" if model == "tiny_kd" else None
                    t0 = time.time()
                    rate = measure(root, model, mode, data, work, epochs, crops, teacher)
                    if model in models:
                        out[root.label].setdefault(f"{model}/{mode}", []).append(rate)
                    log.info("repeat %d %s %s %s: %.1f crops/s (%.0f s)", rep + 1, root.label,
                             model, mode, rate, time.time() - t0)
    return out


def table(results: Dict[str, Dict[str, List[float]]], models: Sequence[str],
          modes: Sequence[str]) -> str:
    """Markdown: median crops/s per root, and each root's ratio to the first (the baseline)."""
    labels = list(results)
    head = "| model | mode | " + " | ".join(f"{lb} crops/s" for lb in labels)
    head += "".join(f" | {lb} / {labels[0]}" for lb in labels[1:]) + " |"
    lines = [head, "|" + "---|" * (2 + len(labels) + len(labels) - 1)]
    for model in models:
        for mode in modes:
            key = f"{model}/{mode}"
            med = [statistics.median(results[lb][key]) for lb in labels]
            row = f"| {model} | {mode} | " + " | ".join(f"{m:.1f}" for m in med)
            row += "".join(f" | {m / med[0]:.2f}x" for m in med[1:]) + " |"
            lines.append(row)
    return "\n".join(lines)
