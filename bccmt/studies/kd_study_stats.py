"""Statistics of a paired-seed KD study (pure functions on arrays).

A pair = two students that share seed, data order and schedule and differ only in KD. For a metric
(EER %, minDCF) with per-seed values a_i (KD arm) and p_i (plain), the paired differences are
d_i = a_i - p_i (negative: KD is better). Confidence intervals of mean(d) (level 0.95 by default):

- paired t: mean(d) +/- t_{(1+level)/2, n-1} * sd(d) / sqrt(n), sd with ddof 1 (needs n >= 2);
- bootstrap over seeds: ``n_boot`` resamples of the n differences with replacement (numpy
  default_rng(seed), so the interval is reproducible), the mean of each; the interval is the
  (1-level)/2 and (1+level)/2 percentiles (numpy's linear interpolation) of those means.

Relative change: 100 * mean(d) / mean(p), the change of the mean metric, with the t interval
scaled by the same factor (the plain mean taken as fixed: a first-order interval). The paper's
figure is PAPER_RELATIVE_EER_CHANGE (BC-CMT-Tiny EER with SA-map KD, TASLP 2024).
"""

from __future__ import annotations

import math
from typing import Dict, Sequence, Tuple

import numpy as np

PAPER_RELATIVE_EER_CHANGE = -15.5  # percent
N_BOOT = 10000
BOOT_SEED = 0


def paired_t_ci(d: Sequence[float], level: float = 0.95) -> Tuple[float, float]:
    """(low, high) t interval of mean(d); (nan, nan) for fewer than 2 values."""
    from scipy.stats import t as student_t

    d = np.asarray(d, dtype=np.float64)
    if d.size < 2:
        return math.nan, math.nan
    half = student_t.ppf((1.0 + level) / 2.0, d.size - 1) * d.std(ddof=1) / math.sqrt(d.size)
    return float(d.mean() - half), float(d.mean() + half)


def bootstrap_ci(d: Sequence[float], level: float = 0.95, n_boot: int = N_BOOT,
                 seed: int = BOOT_SEED) -> Tuple[float, float]:
    """(low, high) percentile bootstrap interval of mean(d) over resampled seeds; nan for n < 2."""
    d = np.asarray(d, dtype=np.float64)
    if d.size < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(n_boot, d.size))].mean(axis=1)
    lo, hi = np.percentile(means, [100.0 * (1.0 - level) / 2.0, 100.0 * (1.0 + level) / 2.0])
    return float(lo), float(hi)


def _mean_std(x: np.ndarray) -> Tuple[float, float]:
    return float(x.mean()), float(x.std(ddof=1)) if x.size > 1 else math.nan


def compare_paired(plain: Dict[int, float], arm: Dict[int, float],
                   level: float = 0.95) -> Dict[str, object]:
    """Summary of arm vs plain over the seeds both have: {n, seeds, plain_mean, plain_std,
    arm_mean, arm_std, diff_mean, diff_std, t_ci, bootstrap_ci, relative_percent,
    relative_t_ci} (intervals as [low, high]; nan where n is too small)."""
    seeds = sorted(set(plain) & set(arm))
    if not seeds:
        raise ValueError("no seed has both a plain and an arm result")
    p = np.array([plain[s] for s in seeds], dtype=np.float64)
    a = np.array([arm[s] for s in seeds], dtype=np.float64)
    d = a - p
    p_mean, p_std = _mean_std(p)
    a_mean, a_std = _mean_std(a)
    d_mean, d_std = _mean_std(d)
    t_lo, t_hi = paired_t_ci(d, level)
    scale = 100.0 / p_mean if p_mean else math.nan
    return {"n": len(seeds), "seeds": seeds, "plain_mean": p_mean, "plain_std": p_std,
            "arm_mean": a_mean, "arm_std": a_std, "diff_mean": d_mean, "diff_std": d_std,
            "t_ci": [t_lo, t_hi], "bootstrap_ci": list(bootstrap_ci(d, level)),
            "relative_percent": d_mean * scale, "relative_t_ci": [t_lo * scale, t_hi * scale]}
