"""Two-covariance PLDA trained by EM, in the manner of Kaldi's ``ivector-compute-plda``.

Model: x = m + y + e with speaker variable y ~ N(0, B) and residual e ~ N(0, W). EM (Kaldi's
PldaEstimator) starts from B = W = I; each iteration computes, for every speaker with n examples
and mean m_c, the posterior of y: covariance (B^-1 + n W^-1)^-1 and mean w_c, then re-estimates
B from the posterior second moments of y and W from the within-speaker scatter plus the posterior
residuals. Speakers are processed together in the basis that diagonalises B^-1 and W^-1 at once,
so one iteration costs a few D x D decompositions plus O(S * D^2), whatever the speaker count.

The result is stored Kaldi-style: ``transform`` maps x - mean to a space where W = I and
B = diag(psi). Scoring is the log-likelihood ratio of "same speaker" vs "different speakers" with
one enrolment example, optionally after Kaldi's PLDA-space length normalisation; with one example
on each side it is symmetric in enroll and test.

PldaBackend chains the recipe's preprocessing (Kaldi egs/voxceleb/v2 stage 10): subtract the
training mean, optional LDA, length-normalise to sqrt(dim), then PLDA.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

import numpy as np
import scipy.linalg

from bccmt.backend.cosine import length_norm
from bccmt.backend.lda import class_stats, train_lda

logger = logging.getLogger(__name__)

DEFAULT_EM_ITERS = 10


@dataclass
class Plda:
    """mean: (D,); transform: (D, D) rows = PLDA-space directions; psi: (D,) between-class
    variances in that space, descending (within-class variance there is 1)."""

    mean: np.ndarray
    transform: np.ndarray
    psi: np.ndarray

    def project(self, x: np.ndarray, normalize_length: bool = True) -> np.ndarray:
        """(N, D) inputs -> (N, D) PLDA-space vectors; with Kaldi's length normalisation, each is
        scaled so that its squared Mahalanobis norm under the 1-example model equals D."""
        y = (np.asarray(x, dtype=np.float64) - self.mean) @ self.transform.T
        if normalize_length:
            dot = (y * y / (self.psi + 1.0)).sum(axis=1)
            y *= np.sqrt(y.shape[1] / np.maximum(dot, 1e-20))[:, None]
        return y

    def llr(self, enroll: np.ndarray, test: np.ndarray) -> np.ndarray:
        """Log-likelihood ratios for rows of PLDA-space enroll/test (K, D), one example each."""
        psi = self.psi
        mean = psi / (psi + 1.0) * enroll
        var = 1.0 + psi / (psi + 1.0)
        given = -0.5 * (np.log(var).sum() + ((test - mean) ** 2 / var).sum(axis=1))
        without = -0.5 * (np.log(psi + 1.0).sum() + (test * test / (psi + 1.0)).sum(axis=1))
        return given - without


def train_plda(x: np.ndarray, labels: np.ndarray, num_iters: int = DEFAULT_EM_ITERS) -> Plda:
    """EM-trained two-covariance PLDA. x: (N, D) preprocessed training embeddings; labels: (N,).

    A speaker with a single example adds nothing to the within-speaker scatter but still enters
    the EM statistics through the posterior of its speaker variable.
    """
    x = np.asarray(x, dtype=np.float64)
    inv, class_means, counts = class_stats(x, labels)
    n_spk, dim = class_means.shape
    if n_spk < 2:
        raise ValueError("PLDA needs at least two speakers")
    resid = x - class_means[inv]
    scatter = resid.T @ resid  # within-speaker scatter around the speaker means
    del resid
    global_mean = class_means.mean(axis=0)  # Kaldi: mean of the speaker means
    m = class_means - global_mean
    n = counts.astype(np.float64)
    within, between = np.eye(dim), np.eye(dim)
    for it in range(num_iters):
        w_inv = _inv_sym(within)
        b_inv = _inv_sym(between)
        lam, v = scipy.linalg.eigh(b_inv, w_inv)  # v.T w_inv v = I, v.T b_inv v = diag(lam)
        lam = np.maximum(lam, 0.0)
        # posterior covariance of y for n examples: v diag(1 / (lam + n)) v.T
        inv_ln = 1.0 / (lam[None, :] + n[:, None])  # (S, D)
        z = (m @ (w_inv @ v)) * (n[:, None] * inv_ln)  # coordinates of posterior means in v
        w_post = z @ v.T  # (S, D) posterior means of y
        m_w = m - w_post
        between_stats = (v * inv_ln.sum(axis=0)) @ v.T + w_post.T @ w_post
        within_stats = (scatter + (v * (n[:, None] * inv_ln).sum(axis=0)) @ v.T
                        + (m_w * n[:, None]).T @ m_w)
        between = _sym(between_stats / n_spk)
        within = _sym(within_stats / x.shape[0])
        logger.debug("PLDA EM iter %d: tr(W)=%.4f tr(B)=%.4f", it + 1, np.trace(within),
                     np.trace(between))
    psi, vecs = scipy.linalg.eigh(between, within)  # vecs.T W vecs = I, vecs.T B vecs = diag
    order = np.argsort(psi)[::-1]
    return Plda(mean=global_mean, transform=vecs[:, order].T, psi=np.maximum(psi[order], 0.0))


def _sym(a: np.ndarray) -> np.ndarray:
    return 0.5 * (a + a.T)


def _inv_sym(a: np.ndarray) -> np.ndarray:
    return _sym(scipy.linalg.inv(a))


@dataclass
class PldaBackend:
    """mean (D,) subtracted first; lda (D, d) or None; plda trained on the processed vectors."""

    mean: np.ndarray
    lda: Optional[np.ndarray]
    plda: Plda
    normalize_length: bool = True

    def preprocess(self, x: np.ndarray) -> np.ndarray:
        y = np.asarray(x, dtype=np.float64) - self.mean
        if self.lda is not None:
            y = y @ self.lda
        return length_norm(y, scale=np.sqrt(y.shape[1]))

    def score(self, emb: np.ndarray, enroll_idx, test_idx) -> np.ndarray:
        """PLDA LLRs of trials (enroll_idx[k], test_idx[k]) over rows of emb (N, D) -> (K,)."""
        enroll_idx = np.asarray(enroll_idx, dtype=np.int64)
        test_idx = np.asarray(test_idx, dtype=np.int64)
        used, pos = np.unique(np.r_[enroll_idx, test_idx], return_inverse=True)
        y = self.plda.project(self.preprocess(emb[used]), self.normalize_length)
        k = enroll_idx.size
        out = np.empty(k)
        for s in range(0, k, 1 << 16):
            e = y[pos[s:min(s + (1 << 16), k)]]
            t = y[pos[k + s:k + min(s + (1 << 16), k)]]
            out[s:s + e.shape[0]] = self.plda.llr(e, t)
        return out


def train_plda_backend(
    x: np.ndarray,
    labels: np.ndarray,
    lda_dim: Optional[int] = None,
    num_iters: int = DEFAULT_EM_ITERS,
    normalize_length: bool = True,
) -> PldaBackend:
    """Trains mean -> [LDA] -> length norm -> PLDA on training embeddings x (N, D), labels (N,).

    lda_dim: None for no LDA, 0 for the default dim (min(D, 100, #spk - 1)), else that dim.
    """
    x = np.asarray(x, dtype=np.float64)
    n_spk = np.unique(labels).size
    if x.shape[0] - n_spk < x.shape[1]:
        logger.warning("only %d within-speaker degrees of freedom for %d dims: the within-speaker "
                       "covariance is singular and LDA/PLDA will overfit (use more training "
                       "data or a smaller --lda-dim)", x.shape[0] - n_spk, x.shape[1])
    mean = x.mean(axis=0)
    lda = None
    if lda_dim is not None:
        _, lda = train_lda(x - mean, labels, dim=lda_dim or None)
        logger.info("LDA: %d -> %d dims", x.shape[1], lda.shape[1])
    backend = PldaBackend(mean=mean, lda=lda, plda=None, normalize_length=normalize_length)
    backend.plda = train_plda(backend.preprocess(x), labels, num_iters)
    return backend
