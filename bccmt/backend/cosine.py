"""Cosine scoring after subtracting the training-set mean (WeSpeaker's default backend)."""

from __future__ import annotations

import numpy as np


def length_norm(x: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Rows of x (N, D) scaled to L2 norm ``scale`` (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x * (scale / np.maximum(norms, 1e-12))


def prepare_cosine(emb: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """emb (N, D) minus the training mean (D,), then length-normalised: (N, D) float64."""
    return length_norm(np.asarray(emb, dtype=np.float64) - np.asarray(mean, dtype=np.float64))


def cosine_scores(
    emb: np.ndarray, enroll_idx: np.ndarray, test_idx: np.ndarray, mean: np.ndarray,
    chunk: int = 4096,
) -> np.ndarray:
    """Cosine similarity of trials (enroll_idx[k], test_idx[k]) over rows of emb (N, D).

    mean: (D,) training-set mean, subtracted before length normalisation. Returns (K,) float64 in
    [-1, 1]. Trials are processed in chunks so memory stays O(chunk * D).
    """
    e = prepare_cosine(emb, mean)
    return pairwise_dot(e, enroll_idx, test_idx, chunk)


def pairwise_dot(e: np.ndarray, enroll_idx, test_idx, chunk: int = 4096) -> np.ndarray:
    """Row-wise dot products e[enroll_idx[k]] . e[test_idx[k]] -> (K,)."""
    enroll_idx = np.asarray(enroll_idx, dtype=np.int64)
    test_idx = np.asarray(test_idx, dtype=np.int64)
    out = np.empty(enroll_idx.size, dtype=np.float64)
    for s in range(0, enroll_idx.size, chunk):
        a = e[enroll_idx[s:s + chunk]]
        b = e[test_idx[s:s + chunk]]
        out[s:s + chunk] = np.einsum("ij,ij->i", a, b)
    return out
