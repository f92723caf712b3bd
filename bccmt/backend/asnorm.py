"""Adaptive symmetric score normalisation (AS-norm) of cosine scores.

Cohort: the per-speaker mean embeddings of the *training* set (spk_xvector), mean-subtracted and
length-normalised like the trial embeddings, so no evaluation speaker is in it. For each side of a
trial, the side's cosine scores against every cohort speaker are computed and the ``top_n`` highest
kept (top-N is capped at the cohort size); their mean and standard deviation normalise the raw
score, and the two normalised scores are averaged:

    s_norm = ((s - mu_e) / sd_e + (s - mu_t) / sd_t) / 2

(Matejka et al., Interspeech 2017; WeSpeaker uses top_n = 300 with a speaker-mean cohort.)
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

from bccmt.backend.cosine import pairwise_dot, prepare_cosine

DEFAULT_TOP_N = 300


def speaker_means(labels, emb: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(speakers sorted, (S, D) float64 plain mean embedding of each): the AS-norm cohort."""
    spk, inv = np.unique(np.asarray(labels), return_inverse=True)
    sums = np.zeros((spk.size, emb.shape[1]))
    np.add.at(sums, inv.ravel(), np.asarray(emb, dtype=np.float64))
    return spk, sums / np.bincount(inv.ravel())[:, None]


def cohort_stats(
    e: np.ndarray, cohort: np.ndarray, top_n: int = DEFAULT_TOP_N, chunk: int = 1024
) -> Tuple[np.ndarray, np.ndarray]:
    """Mean and std of each row's top-N cohort scores.

    e: (N, D) and cohort: (C, D), both already mean-subtracted and length-normalised.
    Returns (mu, sd), each (N,) float64. Memory is O(chunk * C).
    """
    if cohort.shape[0] == 0:
        raise ValueError("AS-norm needs a non-empty cohort")
    n = min(int(top_n), cohort.shape[0])
    if n < 1:
        raise ValueError(f"top_n must be >= 1, got {top_n}")
    mu = np.empty(e.shape[0])
    sd = np.empty(e.shape[0])
    for s in range(0, e.shape[0], chunk):
        sc = e[s:s + chunk] @ cohort.T
        if n < sc.shape[1]:
            sc = np.partition(sc, sc.shape[1] - n, axis=1)[:, -n:]
        mu[s:s + chunk] = sc.mean(axis=1)
        sd[s:s + chunk] = sc.std(axis=1)
    return mu, np.maximum(sd, 1e-8)


def asnorm_scores(
    emb: np.ndarray,
    enroll_idx: np.ndarray,
    test_idx: np.ndarray,
    mean: np.ndarray,
    cohort: np.ndarray,
    top_n: int = DEFAULT_TOP_N,
) -> np.ndarray:
    """AS-normalised cosine scores of trials over rows of emb (N, D).

    mean: (D,) training-set mean; cohort: (C, D) raw training speaker means (prepared here).
    Cohort statistics are computed once per embedding that appears in a trial. Returns (K,).
    """
    enroll_idx = np.asarray(enroll_idx, dtype=np.int64)
    test_idx = np.asarray(test_idx, dtype=np.int64)
    e = prepare_cosine(emb, mean)
    c = prepare_cosine(cohort, mean)
    used = np.unique(np.r_[enroll_idx, test_idx])
    mu = np.zeros(e.shape[0])
    sd = np.ones(e.shape[0])
    mu[used], sd[used] = cohort_stats(e[used], c, top_n)
    raw = pairwise_dot(e, enroll_idx, test_idx)
    return 0.5 * ((raw - mu[enroll_idx]) / sd[enroll_idx] + (raw - mu[test_idx]) / sd[test_idx])
