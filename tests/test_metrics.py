"""EER / minDCF: hand-computed lists, a brute-force threshold sweep, DET plot, score-file I/O."""

import numpy as np
import pytest

from bccmt.io.scores import read_scores
from bccmt.metrics import compute_eer, compute_metrics, compute_min_dcf, det_points, plot_det


def _split(tar, non):
    return np.r_[tar, non], np.r_[np.ones(len(tar), bool), np.zeros(len(non), bool)]


def test_perfect_separation():
    s, lab = _split([3.0, 4.0], [1.0, 2.0])
    assert compute_eer(s, lab) == (0.0, 2.0)
    assert compute_min_dcf(s, lab, 0.01) == (0.0, 2.0)


def test_hand_computed_eer_and_min_dcf():
    # sorted: .1n .4t .5n .6n .8t .9t .95t; at t=.5 P_miss=1/4, P_fa=1/3; at t=.6 1/4, 0.
    # d = P_miss - P_fa: -1/12 then 1/4 -> a = 1/4 -> EER = 1/4 (both curves), threshold .6
    s, lab = _split([0.4, 0.8, 0.9, 0.95], [0.1, 0.5, 0.6])
    eer, thr = compute_eer(s, lab)
    assert eer == pytest.approx(0.25) and thr == 0.6
    # C_det at t=.6 = 0.01 * 1/4 + 0.99 * 0 = 0.0025; / C_def 0.01 = 0.25
    assert compute_min_dcf(s, lab, 0.01) == (pytest.approx(0.25), 0.6)
    m = compute_metrics(s, lab)
    assert m["eer"] == pytest.approx(25.0) and m["min_dcf_0.001"] == pytest.approx(0.25)
    assert (m["n_target"], m["n_nontarget"]) == (4, 3)


def test_tied_scores_interpolate_along_the_diagonal():
    # A target and a nontarget tie at .5: moving t across .5 changes both rates at once,
    # from (P_miss, P_fa) = (0, 1/2) to (1/2, 0); the segment crosses the diagonal at 1/4.
    s, lab = _split([0.5, 0.9], [0.5, 0.1])
    eer, thr = compute_eer(s, lab)
    assert eer == pytest.approx(0.25) and thr == 0.5
    # p_target .5: costs .5, .25 (t=.1), .25 (t=.5), .5 -> min .25 / C_def .5 = .5 at first min
    assert compute_min_dcf(s, lab, 0.5) == (pytest.approx(0.5), 0.1)


def test_all_wrong_and_cost_weights():
    s, lab = _split([0.0, 1.0], [2.0, 3.0])  # every target below every nontarget
    assert compute_eer(s, lab)[0] == pytest.approx(1.0)
    assert compute_min_dcf(s, lab, 0.01)[0] == pytest.approx(1.0)  # never beats the default
    dcf, _ = compute_min_dcf(*_split([0.4, 0.8, 0.9, 0.95], [0.1, 0.5, 0.6]), 0.01,
                             c_miss=10.0, c_fa=1.0)
    assert dcf == pytest.approx((10 * 0.01 * 0.25) / 0.1)


def test_bad_input():
    with pytest.raises(ValueError, match="need target and nontarget"):
        compute_eer(np.array([1.0, 2.0]), np.array([1, 1]))
    with pytest.raises(ValueError, match="NaN"):
        compute_eer(np.array([1.0, np.nan]), np.array([1, 0]))


def _brute_force(scores, labels, p_target):
    """O(N^2) sweep over every threshold (each distinct score, and -inf)."""
    t = np.r_[-np.inf, np.unique(scores)]
    tar, non = scores[labels], scores[~labels]
    p_miss = (tar[None, :] <= t[:, None]).mean(axis=1)
    p_fa = (non[None, :] > t[:, None]).mean(axis=1)
    cost = p_target * p_miss + (1 - p_target) * p_fa
    d = p_miss - p_fa
    i = int(np.argmax(d >= 0))
    a = d[i - 1] / (d[i - 1] - d[i])
    eer = p_miss[i - 1] + a * (p_miss[i] - p_miss[i - 1])
    lower = np.max(np.minimum(p_miss, p_fa))  # EER lies between these discrete bounds
    upper = np.min(np.maximum(p_miss, p_fa))
    return eer, cost.min() / min(p_target, 1 - p_target), lower, upper


@pytest.mark.parametrize("seed,rounding", [(0, None), (1, None), (2, 1)])
def test_agrees_with_brute_force_sweep(seed, rounding):
    rng = np.random.default_rng(seed)
    labels = rng.random(1500) < 0.2
    scores = rng.normal(size=1500) + 1.5 * labels
    if rounding is not None:
        scores = np.round(scores, rounding)  # many ties
    eer_bf, dcf_bf, lower, upper = _brute_force(scores, labels, 0.01)
    eer, _ = compute_eer(scores, labels)
    assert eer == pytest.approx(eer_bf, abs=1e-12)
    assert lower - 1e-12 <= eer <= upper + 1e-12
    assert compute_min_dcf(scores, labels, 0.01)[0] == pytest.approx(dcf_bf, abs=1e-12)
    _, dcf_bf3, _, _ = _brute_force(scores, labels, 0.001)
    assert compute_min_dcf(scores, labels, 0.001)[0] == pytest.approx(dcf_bf3, abs=1e-12)
    # the discrete (Kaldi compute-eer style) value is within about 1/N_tar of the interpolated
    assert abs(upper - eer) <= 1.0 / labels.sum() + 1.0 / (~labels).sum()


def test_order_invariance_and_threshold_semantics():
    rng = np.random.default_rng(3)
    labels = rng.random(400) < 0.3
    scores = rng.normal(size=400) + labels
    perm = rng.permutation(400)
    assert compute_metrics(scores, labels) == compute_metrics(scores[perm], labels[perm])
    dcf, thr = compute_min_dcf(scores, labels, 0.01)
    p_miss = np.mean(scores[labels] <= thr)  # rejected when score <= threshold
    p_fa = np.mean(scores[~labels] > thr)
    assert (0.01 * p_miss + 0.99 * p_fa) / 0.01 == pytest.approx(dcf)


def test_det_plot_and_points(tmp_path):
    rng = np.random.default_rng(4)
    labels = rng.random(5000) < 0.5
    scores = rng.normal(size=5000) + 2 * labels
    p_fa, p_miss = det_points(scores, labels, max_points=100)
    assert len(p_fa) <= 101 and p_fa[0] == 1.0 and p_miss[-1] == 1.0
    assert np.all(np.diff(p_miss) >= 0) and np.all(np.diff(p_fa) <= 0)
    png = tmp_path / "det.png"
    plot_det({"cosine": {"a": (p_fa, p_miss)}, "plda": {"a": (p_fa, p_miss)}}, str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_read_scores_joins_trials(tmp_path):
    (tmp_path / "t").write_text("a b target\na c nontarget\n")
    (tmp_path / "s").write_text("a c 0.1\na b 0.9\n")
    s, lab = read_scores(tmp_path / "s", tmp_path / "t")
    assert s.tolist() == [0.1, 0.9] and lab.tolist() == [False, True]
    (tmp_path / "s2").write_text("a c 0.1\nx y 0.9\n")
    with pytest.raises(ValueError, match=r"s2:2: pair 'x y' is not in"):
        read_scores(tmp_path / "s2", tmp_path / "t")


def test_read_scores_in_trial_order_and_missing_scores(tmp_path):
    (tmp_path / "t").write_text("a b target\na c nontarget\nb c nontarget\n")
    (tmp_path / "s").write_text("a b 0.9 \na c 0.1\nb c -1e3\n")
    s, lab = read_scores(tmp_path / "s", tmp_path / "t")
    assert s.tolist() == [0.9, 0.1, -1000.0] and lab.tolist() == [True, False, False]
    (tmp_path / "s3").write_text("a b 0.9\na c 0.1\n")
    with pytest.raises(ValueError, match="1 trials of .* have no score"):
        read_scores(tmp_path / "s3", tmp_path / "t")
    (tmp_path / "s4").write_text("a b 0.9 target\na c 0.1 nontarget\n")
    assert read_scores(tmp_path / "s4")[1].tolist() == [True, False]
