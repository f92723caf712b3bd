"""bccmt.features: fbank shape/frames/values, config loading, CMN, kaldiio round trip."""

import numpy as np
import pytest
import torch

from bccmt.features import (
    FbankConfig,
    FbankConfigError,
    apply_cmn,
    compute_fbank,
    load_fbank_config,
    utt_seed,
)


def tone(freq, seconds=1.0, rate=16000, amp=0.5):
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def mel(f):
    return 1127.0 * np.log(1.0 + f / 700.0)


@pytest.mark.parametrize("n", [400, 401, 559, 560, 16000, 16123])
def test_frame_count_shape_dtype(n):
    wave = np.random.default_rng(n).uniform(-0.5, 0.5, n).astype(np.float32)
    feats = compute_fbank(wave, FbankConfig())
    assert feats.shape == ((n + 80) // 160, 80)
    assert feats.dtype == np.float32
    assert np.isfinite(feats).all()


def test_shorter_than_one_frame_is_an_error():
    with pytest.raises(ValueError, match="gives no fbank frame"):
        compute_fbank(np.zeros(79, np.float32))
    with pytest.raises(ValueError, match="gives no fbank frame"):
        compute_fbank(np.zeros(399, np.float32), FbankConfig(snip_edges=True))


@pytest.mark.parametrize("freq", [300.0, 1000.0, 4000.0])
def test_tone_peaks_in_expected_mel_bin(freq):
    cfg = FbankConfig()
    feats = compute_fbank(tone(freq), cfg)
    # Kaldi's mel filters: 80 triangles equally spaced in mel between low_freq and Nyquist.
    lo, hi = mel(cfg.low_freq), mel(cfg.sample_rate / 2)
    centres = lo + (hi - lo) * np.arange(1, 81) / 81
    expected = int(np.argmin(np.abs(centres - mel(freq))))
    assert abs(int(feats.mean(axis=0).argmax()) - expected) <= 1


def test_scale_is_int16_and_loudness_shifts_log_energy():
    quiet = compute_fbank(tone(1000.0, amp=0.1))
    loud = compute_fbank(tone(1000.0, amp=0.2))
    peak = quiet.mean(0).argmax()
    # doubling the amplitude = +log(4) in log power
    assert loud[:, peak].mean() - quiet[:, peak].mean() == pytest.approx(np.log(4.0), abs=0.05)
    # int16 scale: a half-scale 1 kHz tone has log mel energy around 20 in its peak bin
    assert 15 < compute_fbank(tone(1000.0))[:, peak].mean() < 30


def test_dither_is_seeded_and_reproducible():
    cfg = FbankConfig(dither=1.0)
    wave = tone(500.0)
    a = compute_fbank(wave, cfg, seed=utt_seed("id10001/abc/00001"))
    b = compute_fbank(wave, cfg, seed=utt_seed("id10001/abc/00001"))
    c = compute_fbank(wave, cfg, seed=utt_seed("id10001/abc/00002"))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(compute_fbank(wave, cfg), compute_fbank(wave, cfg))
    clean = compute_fbank(wave, FbankConfig())
    assert not np.array_equal(a, clean)
    peak = clean.mean(0).argmax()
    assert a[:, peak].mean() == pytest.approx(clean[:, peak].mean(), abs=0.01)


def test_apply_cmn_numpy_and_torch():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((50, 80)) + 3.0).astype(np.float32)
    y = apply_cmn(x)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(y, x - x.mean(axis=0), atol=1e-6)
    xt = torch.from_numpy(np.stack([x, 2 * x]))  # (B, T, F)
    yt = apply_cmn(xt)
    assert isinstance(yt, torch.Tensor) and yt.shape == (2, 50, 80)
    np.testing.assert_allclose(yt[0].numpy(), y, atol=1e-5)
    np.testing.assert_allclose(yt[1].numpy(), 2 * y, atol=1e-5)
    np.testing.assert_allclose(apply_cmn(torch.from_numpy(x)).numpy(), y, atol=1e-5)


def test_kaldiio_ark_round_trip(tmp_path):
    import kaldiio

    feats = {f"id1000{i}/v/0000{i}": compute_fbank(tone(200.0 * (i + 1), 0.5)) for i in range(3)}
    ark, scp = tmp_path / "f.ark", tmp_path / "f.scp"
    with kaldiio.WriteHelper(f"ark,scp:{ark},{scp}") as w:
        for k, v in feats.items():
            w(k, v)
    back = dict(kaldiio.load_scp(str(scp)).items())
    assert list(back) == list(feats)
    for k, v in feats.items():
        assert back[k].dtype == np.float32
        np.testing.assert_array_equal(back[k], v)


def test_config_yaml_defaults_and_unknown_key(tmp_path):
    p = tmp_path / "fbank.yaml"
    p.write_text("num_mel_bins: 80\ndither: 1\n")
    cfg = load_fbank_config(p)
    assert cfg.dither == 1.0 and isinstance(cfg.dither, float)
    assert cfg.to_dict() == {**FbankConfig().to_dict(), "dither": 1.0}
    assert FbankConfig.from_dict(cfg.to_dict()) == cfg
    p.write_text("num_mel_bins: 80\nnum_mel_bin: 40\nditer: 1\n")
    with pytest.raises(FbankConfigError, match=r"unknown key\(s\) diter, num_mel_bin"):
        load_fbank_config(p)
    p.write_text("window_type: gauss\n")
    with pytest.raises(FbankConfigError, match="window_type 'gauss' unknown"):
        load_fbank_config(p)
    p.write_text("snip_edges: 3\n")
    with pytest.raises(FbankConfigError, match="snip_edges"):
        load_fbank_config(p)


def test_repo_fbank_yaml_loads():
    from pathlib import Path

    conf = Path(__file__).resolve().parents[1] / "egs/voxceleb/conf/fbank.yaml"
    cfg = load_fbank_config(conf)
    assert cfg.num_mel_bins == 80 and cfg.dither == 1.0 and cfg.sample_rate == 16000


def test_differences_is_the_one_comparison():
    a = FbankConfig(dither=1.0)
    b = FbankConfig(dither=0.0, low_freq=40.0)
    assert a.differences(a) == []
    assert a.differences(b, names=("data", "model")) == [
        "dither: data 1.0 vs model 0.0", "low_freq: data 20.0 vs model 40.0"]
    assert a.differences(b, ignore=("dither",)) == ["low_freq: a 20.0 vs b 40.0"]
    with pytest.raises(ValueError, match="unknown FbankConfig field"):
        a.differences(b, ignore=("diter",))


def test_digital_silence_gets_features_inside_the_training_range():
    """Exact-zero pauses at extraction (dither 0) must not give log-Mel values training never
    saw: training features are dithered, extraction floors each bin at the dither's level."""
    from bccmt.features import for_purpose, silence_floor

    rng = np.random.default_rng(0)
    sr = 16000
    speech = 0.1 * np.sin(2 * np.pi * 220 * np.arange(sr) / sr) + 0.01 * rng.standard_normal(sr)
    wave = np.concatenate([speech, np.zeros(sr), speech])  # a digital pause of 1 s in the middle
    training = FbankConfig(dither=1.0)
    train_feats = compute_fbank(wave, training, seed=1)  # what a training crop of it looks like
    raw = compute_fbank(wave, for_purpose(training, "extraction"))
    floor = silence_floor(training)
    floored = np.maximum(raw, floor[None, :])  # what the graph does first
    lo = train_feats.min(axis=0)
    assert (raw[120:180] < lo - 5).all()  # without the floor: far below anything trained on
    assert (floored >= lo - 1.0).all()  # with it: inside the trained range (1st percentile)
    speech_rows = np.r_[10:90, 210:290]
    np.testing.assert_array_equal(floored[speech_rows], raw[speech_rows])  # signal untouched
    assert silence_floor(FbankConfig(dither=0.0)) is None
    assert for_purpose(training, "extraction").dither == 0.0 and training.dither == 1.0
