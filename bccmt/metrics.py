"""Verification metrics on score arrays: EER, normalised minDCF, their thresholds, DET points.

Conventions (the same as Kaldi's ``sid/compute_min_dcf.py`` and the NIST SRE scoring code):

- A trial is *accepted* when ``score > threshold`` and rejected when ``score <= threshold``.
- P_miss(t) = #{target scores <= t} / N_tar, P_fa(t) = #{nontarget scores > t} / N_non.
- The operating points are t = -inf (accept everything: P_miss 0, P_fa 1) and t = each distinct
  score (tied scores move together, so ties never create points that no threshold can reach).

Everything is one sort plus cumulative sums: O(N log N) time and O(N) memory, so 10 million scores
need a few hundred MB, never an N x N matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Sequence, Tuple

import numpy as np


@dataclass
class OperatingPoints:
    """The P_miss / P_fa curve at every reachable threshold (ascending thresholds).

    thresholds: (K+1,) float64; the first entry is -inf. p_miss: (K+1,) non-decreasing.
    p_fa: (K+1,) non-increasing. n_target / n_nontarget: trial counts.
    """

    thresholds: np.ndarray
    p_miss: np.ndarray
    p_fa: np.ndarray
    n_target: int
    n_nontarget: int


def operating_points(scores: np.ndarray, labels: np.ndarray) -> OperatingPoints:
    """scores: (N,) real; labels: (N,) bool or {0,1} (1 = target). Needs both classes present."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel().astype(bool)
    if scores.shape != labels.shape:
        raise ValueError(f"{scores.shape[0]} scores but {labels.shape[0]} labels")
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"{int(np.sum(~np.isfinite(scores)))} scores are NaN or infinite")
    n_tar = int(labels.sum())
    n_non = int(labels.size - n_tar)
    if n_tar == 0 or n_non == 0:
        raise ValueError(f"need target and nontarget trials, got {n_tar} and {n_non}")
    order = np.argsort(scores)  # ties are grouped below, so their order does not matter
    s = scores[order]
    tar_le = np.cumsum(labels[order], dtype=np.int64)  # targets with score <= s[i]
    del order
    # Keep the last index of each run of tied scores: the threshold t = s[i] rejects the whole run.
    last = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
    tar_le = tar_le[last]
    non_le = (last + 1) - tar_le
    thresholds = np.r_[-np.inf, s[last]]
    p_miss = np.r_[0.0, tar_le / n_tar]
    p_fa = np.r_[1.0, 1.0 - non_le / n_non]
    return OperatingPoints(thresholds, p_miss, p_fa, n_tar, n_non)


def compute_eer(scores: np.ndarray, labels: np.ndarray) -> Tuple[float, float]:
    """Equal error rate, as a fraction in [0, 1], and its threshold.

    Definition: the operating points (P_fa, P_miss), joined by straight lines in threshold order,
    form a polyline from (1, 0) to (0, 1); the EER is where it crosses the line P_miss = P_fa.
    With i the first point where P_miss >= P_fa and i-1 the point before it
    (where P_miss < P_fa), d = P_miss - P_fa and a = d[i-1] / (d[i-1] - d[i]):
    EER = P_miss[i-1] + a * (P_miss[i] - P_miss[i-1])  (= P_fa at the same a).
    This is the NIST SRE / WeSpeaker interpolated EER; Kaldi's ``compute-eer`` reports the
    discrete value without interpolation, which can differ by up to about 1/N_tar.
    The returned threshold is the score at point i (accept when score > threshold).
    """
    pts = operating_points(scores, labels)
    return _eer_from_points(pts)


def _eer_from_points(pts: OperatingPoints) -> Tuple[float, float]:
    d = pts.p_miss - pts.p_fa  # -1 at the first point, +1 at the last one: a crossing exists
    i = int(np.argmax(d >= 0))
    a = d[i - 1] / (d[i - 1] - d[i])
    eer = pts.p_miss[i - 1] + a * (pts.p_miss[i] - pts.p_miss[i - 1])
    return float(eer), float(pts.thresholds[i])


def compute_min_dcf(
    scores: np.ndarray,
    labels: np.ndarray,
    p_target: float = 0.01,
    c_miss: float = 1.0,
    c_fa: float = 1.0,
) -> Tuple[float, float]:
    """Normalised minimum detection cost and its threshold.

    C_det(t) = c_miss * P_miss(t) * p_target + c_fa * P_fa(t) * (1 - p_target), minimised over the
    operating points and divided by C_default = min(c_miss * p_target, c_fa * (1 - p_target)),
    the cost of always accepting or always rejecting. A value of 1 means no better than that.
    """
    pts = operating_points(scores, labels)
    return _min_dcf_from_points(pts, p_target, c_miss, c_fa)


def _min_dcf_from_points(pts: OperatingPoints, p_target: float, c_miss: float, c_fa: float):
    if not 0.0 < p_target < 1.0:
        raise ValueError(f"p_target must be in (0, 1), got {p_target}")
    c_det = c_miss * p_target * pts.p_miss + c_fa * (1.0 - p_target) * pts.p_fa
    i = int(np.argmin(c_det))
    c_def = min(c_miss * p_target, c_fa * (1.0 - p_target))
    return float(c_det[i] / c_def), float(pts.thresholds[i])


def compute_metrics(
    scores: np.ndarray, labels: np.ndarray, p_targets: Sequence[float] = (0.01, 0.001)
) -> Dict[str, float]:
    """EER (%) and normalised minDCF (c_miss = c_fa = 1) at each p_target, with thresholds.

    Returns keys eer (percent), eer_threshold, min_dcf_<p>, min_dcf_<p>_threshold (p as written
    by ``repr``, e.g. min_dcf_0.01), n_target, n_nontarget. One sort serves all of them.
    """
    pts = operating_points(scores, labels)
    eer, eer_thr = _eer_from_points(pts)
    out: Dict[str, float] = {
        "eer": 100.0 * eer,
        "eer_threshold": eer_thr,
        "n_target": pts.n_target,
        "n_nontarget": pts.n_nontarget,
    }
    for p in p_targets:
        dcf, thr = _min_dcf_from_points(pts, p, 1.0, 1.0)
        out[f"min_dcf_{p!r}"] = dcf
        out[f"min_dcf_{p!r}_threshold"] = thr
    return out


def det_points(
    scores: np.ndarray, labels: np.ndarray, max_points: int = 2000
) -> Tuple[np.ndarray, np.ndarray]:
    """(p_fa, p_miss) of the DET curve, thinned to at most about ``max_points`` points for plots."""
    pts = operating_points(scores, labels)
    n = pts.p_fa.size
    if n > max_points:
        idx = np.unique(np.r_[np.linspace(0, n - 1, max_points).astype(np.int64), n - 1])
        return pts.p_fa[idx], pts.p_miss[idx]
    return pts.p_fa, pts.p_miss


def plot_det(curves: Dict[str, Tuple[np.ndarray, np.ndarray]], png: str, title: str = "") -> None:
    """Draws DET curves (name -> (p_fa, p_miss)) on probit axes into ``png``.

    The axes span 0.1% .. 40%, or up to 95% when some curve's EER is above 20% (weak models).

    ``curves`` may instead map a subplot title to such a dict, giving one panel per entry.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import norm

    panels = curves if curves and isinstance(next(iter(curves.values())), dict) else {title: curves}
    worst = max((float(np.min(np.maximum(fa, miss))) for p in panels.values()
                 for fa, miss in p.values()), default=0.0)
    ticks = np.array([0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4]
                     + ([0.6, 0.8, 0.95] if worst > 0.2 else []))
    lo, hi = norm.ppf(ticks[0]), norm.ppf(ticks[-1])
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 5), squeeze=False)
    for ax, (ptitle, pcurves) in zip(axes[0], panels.items()):
        for name, (p_fa, p_miss) in pcurves.items():
            eps = 1e-12
            ax.plot(norm.ppf(np.clip(p_fa, eps, 1 - eps)), norm.ppf(np.clip(p_miss, eps, 1 - eps)),
                    label=name)
        ax.plot([lo, hi], [lo, hi], "k:", linewidth=0.8)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        labels_txt = [f"{100 * t:g}" for t in ticks]
        ax.set_xticks(norm.ppf(ticks), labels_txt)
        ax.set_yticks(norm.ppf(ticks), labels_txt)
        ax.set_xlabel("False alarm rate (%)")
        ax.set_ylabel("Miss rate (%)")
        ax.set_title(ptitle)
        ax.grid(True, linewidth=0.3)
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    from bccmt.io.tables import atomic_write

    with atomic_write(png, "wb") as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)
