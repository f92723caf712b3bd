"""Batch-1 CPU latency of exported models beside PyTorch and the ECAPA-TDNN baseline (stage 7).

Protocol (DESIGN.md "Measuring"): for each sweep, thread count and input length, every entry
(model x runtime) is timed in turn, so load changes hit all of them alike: ``warmup`` untimed runs,
then the median of ``runs`` timed runs at batch 1 (PyTorch: eval mode, inference_mode, its normal
path; onnxruntime: one session per thread count, intra-op threads = the count, inter-op 1). The
reported figure is the mean of the per-sweep medians. Inputs are random (B=1, T, 80) fbank;
ONNX graphs include their tiling and CMN, the PyTorch models take the features as they are.
Ratios against the baseline measured in the same run are what to compare.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import statistics
import time
from typing import Callable, Dict, List, Sequence

import numpy as np


@dataclasses.dataclass
class LatencyConfig:
    seconds: Sequence[float] = (1.0, 3.0, 10.0)  # input lengths
    threads: Sequence[int] = (1, 2)              # CPU threads
    runs: int = 20                               # timed runs per point (median)
    warmup: int = 5                              # untimed runs per point
    sweeps: int = 2                              # repetitions of the whole sweep


Runner = Callable[[np.ndarray], object]


def _time(run: Runner, x: np.ndarray, warmup: int, runs: int) -> float:
    for _ in range(warmup):
        run(x)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run(x)
        times.append((time.perf_counter() - start) * 1000.0)
    return float(statistics.median(times))


def torch_runner(model, threads: int) -> Runner:
    import torch

    def run(x: np.ndarray):
        torch.set_num_threads(threads)
        with torch.inference_mode():
            return model(torch.from_numpy(x))
    return run


def onnx_runner(path, threads: int) -> Runner:
    from bccmt.runtime.model import OnnxEmbedder

    return OnnxEmbedder(path, threads)


def measure(entries: Dict[str, Callable[[int], Runner]], cfg: LatencyConfig
            ) -> Dict[str, Dict[str, Dict[str, float]]]:
    """entries: name -> (threads -> runner). Returns name -> threads -> seconds -> ms."""
    runners = {(n, t): make(t) for n, make in entries.items() for t in cfg.threads}
    rng = np.random.default_rng(0)
    inputs = {s: rng.normal(size=(1, int(round(100 * s)), 80)).astype(np.float32)
              for s in cfg.seconds}
    per_sweep: Dict[tuple, List[float]] = {}
    for _ in range(cfg.sweeps):
        for t in cfg.threads:
            for s in cfg.seconds:
                for n in entries:
                    ms = _time(runners[(n, t)], inputs[s], cfg.warmup, cfg.runs)
                    per_sweep.setdefault((n, t, s), []).append(ms)
    out: Dict[str, Dict[str, Dict[str, float]]] = {}
    for (n, t, s), v in per_sweep.items():
        out.setdefault(n, {}).setdefault(str(t), {})[f"{s:g}"] = float(np.mean(v))
    return out


def machine() -> str:
    """CPU model, logical cores and load average: what the figures depend on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")),
                       cpu)
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("n/a",)
    return f"{cpu}, {os.cpu_count()} logical cores, load average {load[0]:.2f}"


def table(ms: Dict[str, Dict[str, Dict[str, float]]], baseline: str, cfg: LatencyConfig) -> str:
    """Markdown: one row per entry, ms per (threads, seconds), ratio to the baseline at the
    longest input."""
    longest = f"{max(cfg.seconds):g}"
    head = ["model / runtime"] + [f"{s:g} s, {t} thr (ms)" for t in cfg.threads
                                  for s in cfg.seconds]
    head += [f"{longest} s vs {baseline}, {t} thr" for t in cfg.threads]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, by_t in ms.items():
        cells = [name] + [f"{by_t[str(t)][f'{s:g}']:.1f}" for t in cfg.threads
                          for s in cfg.seconds]
        cells += [f"{by_t[str(t)][longest] / ms[baseline][str(t)][longest]:.2f}x"
                  for t in cfg.threads]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
