"""Backends: cosine, AS-norm, LDA and two-covariance PLDA on toy and synthetic data."""

import numpy as np
import pytest

from bccmt.backend import asnorm_scores, cosine_scores, length_norm, train_lda, train_plda
from bccmt.backend.lda import default_lda_dim
from bccmt.backend.plda import Plda, train_plda_backend
from bccmt.metrics import compute_eer


def _speakers(rng, n_spk, n_utt, dim, between=2.0, offset=3.0):
    centres = rng.normal(size=(n_spk, dim)) * between
    x = centres[:, None, :] + rng.normal(size=(n_spk, n_utt, dim)) + offset
    return x.reshape(-1, dim), np.repeat(np.arange(n_spk), n_utt)


def test_cosine_subtracts_mean_and_normalises():
    emb = np.array([[2.0, 1.0], [1.0, 2.0], [3.0, 1.0]])
    mean = np.array([1.0, 1.0])  # -> [1,0], [0,1], [2,0]
    s = cosine_scores(emb, np.array([0, 0, 1]), np.array([1, 2, 2]), mean)
    assert s == pytest.approx([0.0, 1.0, 0.0])
    assert np.linalg.norm(length_norm(emb), axis=1) == pytest.approx(np.ones(3))


def test_asnorm_matches_hand_computation():
    # After mean subtraction (mean 0) and length norm, the embeddings are unit vectors.
    emb = np.array([[1.0, 0.0], [0.6, 0.8]])
    cohort = np.array([[0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]])
    mean = np.zeros(2)
    # raw = 0.6; enroll cohort scores [0, 1, -1] -> top-2 {1, 0}: mu .5, sd .5
    # test cohort scores [.8, .6, -.6] -> top-2 {.8, .6}: mu .7, sd .1
    s = asnorm_scores(emb, np.array([0]), np.array([1]), mean, cohort, top_n=2)
    assert s[0] == pytest.approx(0.5 * ((0.6 - 0.5) / 0.5 + (0.6 - 0.7) / 0.1))
    # top-N is capped at the cohort size: 300 -> all 3
    s_all = asnorm_scores(emb, np.array([0]), np.array([1]), mean, cohort, top_n=300)
    mu_e, sd_e = np.mean([0, 1, -1]), np.std([0, 1, -1])
    mu_t, sd_t = np.mean([0.8, 0.6, -0.6]), np.std([0.8, 0.6, -0.6])
    assert s_all[0] == pytest.approx(0.5 * ((0.6 - mu_e) / sd_e + (0.6 - mu_t) / sd_t))
    # symmetric in enroll/test
    assert asnorm_scores(emb, np.array([1]), np.array([0]), mean, cohort, 2) == pytest.approx(s)


def test_asnorm_keeps_separation_on_toy_data():
    rng = np.random.default_rng(0)
    train, lab = _speakers(rng, 40, 5, 16)
    cohort = np.stack([train[lab == s].mean(0) for s in range(40)])
    ev, ev_lab = _speakers(rng, 10, 4, 16)
    i, j = np.triu_indices(len(ev), 1)
    s = asnorm_scores(ev, i, j, train.mean(0), cohort, top_n=20)
    assert compute_eer(s, ev_lab[i] == ev_lab[j])[0] < 0.05


def test_lda_whitens_within_class_and_finds_the_discriminant():
    rng = np.random.default_rng(1)
    n_spk, n_utt = 50, 20
    x = rng.normal(size=(n_spk * n_utt, 5))
    lab = np.repeat(np.arange(n_spk), n_utt)
    x[:, 2] += 4.0 * rng.normal(size=n_spk)[lab]  # only dim 2 separates speakers
    mean, t = train_lda(x, lab, dim=1)
    assert t.shape == (5, 1) and abs(t[2, 0]) / np.abs(t[:, 0]).max() == 1.0
    y = (x - mean) @ train_lda(x, lab, dim=3)[1]
    within = y - np.stack([y[lab == s].mean(0) for s in range(n_spk)])[lab]
    # identity up to the 1e-6 regulariser of S_w
    assert np.cov(within.T, bias=True) == pytest.approx(np.eye(3), abs=1e-5)
    assert default_lda_dim(256, 5994) == 100 and default_lda_dim(128, 20) == 19
    assert default_lda_dim(64, 1000) == 64


def test_plda_em_recovers_covariances():
    rng = np.random.default_rng(2)
    b = np.diag([4.0, 2.0, 1.0, 0.5])
    w = np.array([[1, 0.3, 0, 0], [0.3, 1, 0, 0], [0, 0, 0.5, 0], [0, 0, 0, 2.0]])
    n = rng.integers(2, 8, size=1500)
    y = rng.multivariate_normal(np.zeros(4), b, size=1500) + 3.0
    x = np.concatenate([y[s] + rng.multivariate_normal(np.zeros(4), w, size=k)
                        for s, k in enumerate(n)])
    p = train_plda(x, np.repeat(np.arange(1500), n), num_iters=30)
    inv = np.linalg.inv(p.transform)  # W = inv inv^T, B = inv diag(psi) inv^T
    assert inv @ inv.T == pytest.approx(w, abs=0.1)
    assert inv @ np.diag(p.psi) @ inv.T == pytest.approx(b, abs=0.3)
    assert p.mean == pytest.approx(np.full(4, 3.0), abs=0.15)
    assert np.all(np.diff(p.psi) <= 0)


def test_plda_llr_is_the_two_gaussian_ratio():
    # 1-D: same speaker -> [u, v] ~ N(0, [[psi+1, psi], [psi, psi+1]]), else independent.
    psi = 3.0
    p = Plda(mean=np.zeros(1), transform=np.eye(1), psi=np.array([psi]))
    u, v = 0.7, -0.2
    cov = np.array([[psi + 1, psi], [psi, psi + 1]])
    z = np.array([u, v])
    log_same = -0.5 * (z @ np.linalg.solve(cov, z) + np.log(np.linalg.det(cov))
                       + 2 * np.log(2 * np.pi))
    log_diff = sum(-0.5 * (q * q / (psi + 1) + np.log(psi + 1) + np.log(2 * np.pi)) for q in z)
    assert p.llr(np.array([[u]]), np.array([[v]]))[0] == pytest.approx(log_same - log_diff)


def test_plda_separates_synthetic_speakers_and_is_symmetric():
    rng = np.random.default_rng(3)
    train, lab = _speakers(rng, 200, 8, 24)
    backend = train_plda_backend(train, lab, lda_dim=0)  # default LDA dim: min(24, 100, 199)
    assert backend.lda.shape == (24, 24)
    ev, ev_lab = _speakers(rng, 30, 4, 24)  # unseen speakers
    i, j = np.triu_indices(len(ev), 1)
    s = backend.score(ev, i, j)
    eer, _ = compute_eer(s, ev_lab[i] == ev_lab[j])
    assert eer < 0.02  # chance is 0.5
    assert backend.score(ev, j, i) == pytest.approx(s, abs=1e-9)
    assert s[ev_lab[i] == ev_lab[j]].mean() > 0 > s[ev_lab[i] != ev_lab[j]].mean()
    no_lda = train_plda_backend(train, lab, lda_dim=None)
    assert no_lda.lda is None
    assert compute_eer(no_lda.score(ev, i, j), ev_lab[i] == ev_lab[j])[0] < 0.02


def test_plda_needs_two_speakers():
    with pytest.raises(ValueError, match="two speakers"):
        train_plda(np.ones((3, 2)), np.zeros(3))
