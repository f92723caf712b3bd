"""Score files (``enroll test score [target|nontarget]``) and metric result files.

A result file (``<trials-name>.<backend>.result``) is a small YAML mapping: EER in percent,
normalised minDCF (c_miss = c_fa = 1) at p_target 0.01 and 0.001, their thresholds (a trial is
accepted when score > threshold), trial counts, and a description of the backend (training set,
mean source, cohort, top-N, LDA/PLDA settings) so every number records how it was made.
"""

from __future__ import annotations

import array
import os
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import yaml

from bccmt.io.tables import TableError, atomic_write, read_trials

PathLike = Union[str, os.PathLike]


def write_scores(path: PathLike, trials: Sequence[Tuple[str, str, bool]], scores: np.ndarray,
                 with_labels: bool = False) -> None:
    """One ``enroll test score`` line per trial (trial order), atomically."""
    if len(trials) != len(scores):
        raise ValueError(f"{len(trials)} trials but {len(scores)} scores")
    with atomic_write(path, encoding="utf-8") as f:
        for (e, t, lab), s in zip(trials, scores):
            f.write(f"{e} {t} {s:.6f}" + (f" {'target' if lab else 'nontarget'}\n"
                                           if with_labels else "\n"))


def read_scores(path: PathLike, trials: Optional[PathLike] = None) -> Tuple[np.ndarray, np.ndarray]:
    """(scores (N,) float64, labels (N,) bool) from a score file.

    Labels come from the 4th column (target|nontarget) when present, otherwise from ``trials``.
    A score file in trial order (as score_trials writes it) is joined line by line in O(N)
    memory of plain numbers; any other order falls back to a pair lookup table. A score without a
    trial, or a trial without a score, is an error naming the pair.
    """
    if trials is not None:
        try:
            return _read_in_trial_order(path, trials)
        except _OutOfOrder:
            pass
    table = None
    if trials is not None:
        table = {(e, t): lab for e, t, lab in read_trials(trials)}
    scores = array.array("d")
    labels = bytearray()
    seen = 0
    for lineno, parts in _score_lines(path):
        scores.append(_score(path, lineno, parts))
        if table is not None:
            lab = table.get((parts[0], parts[1]))
            if lab is None:
                raise TableError(f"{path}:{lineno}: pair '{parts[0]} {parts[1]}' is not in "
                                 f"{trials}")
            seen += 1
        elif len(parts) == 4 and parts[3] in ("target", "nontarget"):
            lab = parts[3] == "target"
        else:
            raise TableError(f"{path}:{lineno}: no label column; pass the trials file")
        labels.append(lab)
    if table is not None and seen != len(table):
        raise TableError(f"{path}: {len(table) - seen} trials of {trials} have no score")
    return np.frombuffer(scores, dtype=np.float64).copy(), np.frombuffer(labels, bool).copy()


class _OutOfOrder(Exception):
    pass


def _score_lines(path: PathLike):
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) not in (3, 4):
                raise TableError(f"{path}:{lineno}: expected 'enroll test score [label]'")
            yield lineno, parts


def _score(path, lineno, parts) -> float:
    try:
        return float(parts[2])
    except ValueError:
        raise TableError(f"{path}:{lineno}: score '{parts[2]}' is not a number") from None


def _read_in_trial_order(path: PathLike, trials: PathLike):
    scores = array.array("d")
    labels = bytearray()
    with open(trials, encoding="utf-8") as tf:
        trial_lines = (ln.split() for ln in tf if ln.strip())
        for lineno, parts in _score_lines(path):
            want = next(trial_lines, None)
            if want is None or want[:2] != parts[:2]:
                raise _OutOfOrder()
            if len(want) != 3 or want[2] not in ("target", "nontarget"):
                raise _OutOfOrder()  # the slow path reports the malformed trial line
            scores.append(_score(path, lineno, parts))
            labels.append(want[2] == "target")
        if next(trial_lines, None) is not None:
            raise _OutOfOrder()
    return np.frombuffer(scores, dtype=np.float64).copy(), np.frombuffer(labels, bool).copy()


def format_metrics(metrics: Dict[str, float]) -> Dict[str, object]:
    """bccmt.metrics.compute_metrics output -> the rounded, named fields of a result file."""
    out: Dict[str, object] = {
        "num_target": int(metrics["n_target"]),
        "num_nontarget": int(metrics["n_nontarget"]),
        "eer_percent": round(float(metrics["eer"]), 4),
        "eer_threshold": float(f"{metrics['eer_threshold']:.6g}"),
    }
    for k, v in metrics.items():
        if k.startswith("min_dcf_"):
            out[k.replace("min_dcf_", "min_dcf_p")] = float(f"{v:.6g}") if "threshold" in k \
                else round(float(v), 4)
    return out


def write_result(path: PathLike, fields: Dict[str, object]) -> None:
    """Writes a result mapping as YAML with a comment header, atomically."""
    with atomic_write(path, encoding="utf-8") as f:
        f.write("# EER in %; minDCF normalised, c_miss = c_fa = 1; accept when score > threshold\n")
        yaml.safe_dump(fields, f, sort_keys=False, default_flow_style=False)


def read_result(path: PathLike) -> Dict[str, object]:
    with open(path, encoding="utf-8") as f:
        d = yaml.safe_load(f)
    if not isinstance(d, dict) or "eer_percent" not in d:
        raise TableError(f"{path}: not a bccmt result file")
    return d
