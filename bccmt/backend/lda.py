"""Linear discriminant analysis trained on labelled (training-set) embeddings.

Like Kaldi's ``ivector-compute-lda --total-covariance-factor=0``: solve the generalised
eigenproblem S_b v = lambda S_w v (between- and within-class covariances) and keep the ``dim``
leading directions, scaled so that the within-class covariance of the output is the identity.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import scipy.linalg


def default_lda_dim(input_dim: int, num_speakers: int, cap: int = 100) -> int:
    """min(D, cap, #speakers - 1): more directions than that carry no between-class variance."""
    return max(1, min(input_dim, cap, num_speakers - 1))


def class_stats(x: np.ndarray, labels: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(class index per row (N,), class means (S, D), class counts (S,)) for any labels (N,)."""
    _, inv, counts = np.unique(labels, return_inverse=True, return_counts=True)
    inv = inv.ravel()
    means = np.zeros((counts.size, x.shape[1]))
    np.add.at(means, inv, x)
    means /= counts[:, None]
    return inv, means, counts


def train_lda(
    x: np.ndarray, labels: np.ndarray, dim: Optional[int] = None, reg: float = 1e-6
) -> Tuple[np.ndarray, np.ndarray]:
    """x: (N, D) embeddings, labels: (N,) speaker labels (any hashable dtype numpy can sort).

    Returns (mean (D,), transform (D, dim)); apply as (x - mean) @ transform. ``dim`` defaults to
    default_lda_dim. ``reg`` adds reg * trace(S_w) / D to the diagonal of S_w for stability.
    """
    x = np.asarray(x, dtype=np.float64)
    inv, means, counts = class_stats(x, labels)
    if counts.size < 2:
        raise ValueError("LDA needs at least two speakers")
    dim = default_lda_dim(x.shape[1], counts.size) if dim is None else int(dim)
    if not 1 <= dim <= x.shape[1]:
        raise ValueError(f"LDA dim must be in [1, {x.shape[1]}], got {dim}")
    mean = x.mean(axis=0)
    within = x - means[inv]
    s_w = within.T @ within / x.shape[0]
    centred = means - mean
    s_b = (centred * counts[:, None]).T @ centred / x.shape[0]
    s_w += np.eye(x.shape[1]) * (reg * np.trace(s_w) / x.shape[1] + 1e-12)
    evals, evecs = scipy.linalg.eigh(s_b, s_w)  # evecs.T @ s_w @ evecs = I
    order = np.argsort(evals)[::-1][:dim]
    return mean, evecs[:, order]
