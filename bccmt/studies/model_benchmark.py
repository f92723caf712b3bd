"""Model benchmark: parameters, FLOPs at 1 s and batch-1 latency for 1..10 s inputs.

A model spec is a registry name with optional overrides, ``name[:key=value[:key=value]]`` (values
in YAML syntax), e.g. ``bccmt_tiny:time_strides=[1,1,1,1]``. Latency protocol: for each sweep (run
``sweeps`` times), each thread count and each input length, every model is timed in turn (so that
load changes hit all models alike): ``warmup`` untimed passes, then the median of ``runs`` timed
passes under torch.inference_mode at batch 1. The reported latency is the mean of the per-sweep
medians and the spread is (max - min) / mean of those medians, in percent.
"""

from __future__ import annotations

import json
import logging
import os
import platform
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence

import torch
import yaml

from bccmt.models.profile import (count_flops, count_parameters, median, seconds_to_frames,
                                  time_forward)
from bccmt.models.registry import build_model

log = logging.getLogger(__name__)


@dataclass
class BenchmarkConfig:
    """What to measure."""
    models: Sequence[str] = ("bccmt_tiny", "bccmt_small", "bccmt_base", "bccmt_tiny_2dsa",
                             "bccmt_small_2dsa", "bccmt_base_2dsa", "ecapa_tdnn_c512")
    seconds: Sequence[float] = tuple(range(1, 11))   # input lengths
    threads: Sequence[int] = (1, 2)                  # CPU intra-op threads
    sweeps: int = 2                                  # repetitions of the whole sweep
    runs: int = 20                                   # timed passes per point (median taken)
    warmup: int = 5                                  # untimed passes per point
    baseline: str = "ecapa_tdnn_c512"                # latency ratios are relative to this spec
    gpu: bool = True                                 # also time on CUDA when available


@dataclass
class ModelResult:
    spec: str
    params: int
    flops_1s: int
    cpu_ms: Dict[str, Dict[str, float]] = field(default_factory=dict)       # threads -> sec -> ms
    cpu_spread_pct: Dict[str, Dict[str, float]] = field(default_factory=dict)
    gpu_ms: Dict[str, float] = field(default_factory=dict)                  # sec -> ms


def build_from_spec(spec: str) -> torch.nn.Module:
    """``name[:key=value...]`` -> model (eval mode)."""
    name, *pairs = spec.split(":")
    overrides = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"model spec {spec!r}: {pair!r} is not key=value")
        key, value = pair.split("=", 1)
        overrides[key] = yaml.safe_load(value)
    return build_model(name, **overrides).eval()


def run_benchmark(cfg: BenchmarkConfig) -> dict:
    """Measures every model; returns a JSON-ready dict (see write_reports)."""
    models = {spec: build_from_spec(spec) for spec in cfg.models}
    results = {spec: ModelResult(spec, count_parameters(m), count_flops(m, 1.0))
               for spec, m in models.items()}
    for spec, r in results.items():
        log.info("%s: %d parameters, %.1f MFLOPs at 1 s", spec, r.params, r.flops_1s / 1e6)
    per_sweep: Dict[str, Dict[str, Dict[str, List[float]]]] = {s: {} for s in models}
    for sweep in range(cfg.sweeps):
        for threads in cfg.threads:
            for sec in cfg.seconds:
                frames = seconds_to_frames(sec)
                for spec, model in models.items():
                    ms = median(time_forward(model, frames, threads, cfg.warmup, cfg.runs))
                    per_sweep[spec].setdefault(str(threads), {}).setdefault(str(sec), []).append(ms)
                log.info("sweep %d threads %d %g s: %s", sweep + 1, threads, sec,
                         ", ".join(f"{s} {per_sweep[s][str(threads)][str(sec)][-1]:.1f} ms"
                                   for s in models))
    for spec, by_threads in per_sweep.items():
        for th, by_sec in by_threads.items():
            for sec, values in by_sec.items():
                mean = sum(values) / len(values)
                results[spec].cpu_ms.setdefault(th, {})[sec] = round(mean, 2)
                results[spec].cpu_spread_pct.setdefault(th, {})[sec] = round(
                    100.0 * (max(values) - min(values)) / mean, 1)
    if cfg.gpu and torch.cuda.is_available():
        for spec, model in models.items():
            model.cuda()
            for sec in cfg.seconds:
                times = time_forward(model, seconds_to_frames(sec), 1, cfg.warmup, cfg.runs,
                                     device="cuda")
                results[spec].gpu_ms[str(sec)] = round(median(times), 2)
            model.cpu()
    return {
        "config": asdict(cfg),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "torch": torch.__version__,
                    "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                    "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None},
        "results": [asdict(r) for r in results.values()],
    }


def _fmt_params(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.2f}K"


def markdown_table(report: dict) -> str:
    """Summary table (shortest/longest input) plus the full latency sweep."""
    cfg = report["config"]
    secs = [str(s) for s in cfg["seconds"]]
    lo, hi = secs[0], secs[-1]
    base = next((r for r in report["results"] if r["spec"] == cfg["baseline"]), None)
    gpu = any(r["gpu_ms"] for r in report["results"])
    head = ["model", "params", "GFLOPs (1 s)"]
    for th in cfg["threads"]:
        head += [f"CPU {lo} s, {th} thr (ms)", f"CPU {hi} s, {th} thr (ms)",
                 f"growth {lo}->{hi} s, {th} thr"]
        if base:
            head.append(f"{hi} s vs {cfg['baseline']}, {th} thr")
    if gpu:
        head += [f"GPU {lo} s (ms)", f"GPU {hi} s (ms)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in report["results"]:
        row = [r["spec"], _fmt_params(r["params"]), f"{r['flops_1s'] / 1e9:.3f}"]
        for th in map(str, cfg["threads"]):
            a, b = r["cpu_ms"][th][lo], r["cpu_ms"][th][hi]
            sa, sb = r["cpu_spread_pct"][th][lo], r["cpu_spread_pct"][th][hi]
            row += [f"{a:.1f} (±{sa:.0f}%)", f"{b:.1f} (±{sb:.0f}%)", f"{b / a:.2f}x"]
            if base:
                row.append(f"{b / base['cpu_ms'][th][hi]:.2f}")
        if gpu:
            row += [f"{r['gpu_ms'].get(lo, float('nan')):.1f}",
                    f"{r['gpu_ms'].get(hi, float('nan')):.1f}"]
        lines.append("| " + " | ".join(row) + " |")
    out = ["## Model size, compute and latency", "",
           f"Batch 1, torch.inference_mode, median of {cfg['runs']} runs after {cfg['warmup']} "
           f"warm-up runs, mean of {cfg['sweeps']} sweeps (± = spread between sweeps). "
           f"FLOPs = 2 x MACs (convolutions and matrix products). Machine: "
           f"{report['machine']['processor'] or report['machine']['platform']}, "
           f"{report['machine']['cpu_count']} CPUs, load average at the end "
           f"{report['machine']['load_average']}.", "", *lines, ""]
    for th in map(str, cfg["threads"]):
        out += [f"CPU latency (ms), {th} thread(s), by input length (s):", "",
                "| model | " + " | ".join(secs) + " |", "|---|" + "---|" * len(secs)]
        out += ["| " + r["spec"] + " | " + " | ".join(f"{r['cpu_ms'][th][s]:.1f}" for s in secs)
                + " |" for r in report["results"]]
        out.append("")
    return "\n".join(out)


def write_reports(report: dict, out_dir: str) -> List[str]:
    """Writes benchmark.md and benchmark.json atomically into out_dir; returns the paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for name, text in (("benchmark.md", markdown_table(report)),
                       ("benchmark.json", json.dumps(report, indent=2))):
        path = os.path.join(out_dir, name)
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.write(text + "\n")
        os.replace(path + ".tmp", path)
        paths.append(path)
    return paths


def quick_config(models: Optional[Sequence[str]] = None) -> BenchmarkConfig:
    """A short run for a shared machine: 1 and 10 s only, 3 timed runs after 1 warm-up run.
    (The *_2dsa models need several seconds per 10 s pass; leave them out for a faster check.)"""
    cfg = BenchmarkConfig(seconds=(1, 10), runs=3, warmup=1)
    if models:
        cfg.models = tuple(models)
    return cfg
