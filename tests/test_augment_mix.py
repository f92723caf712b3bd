"""Stage-1 augmentation maths (bccmt.augment.mix): SNRs, looping, foreground noises, babble,
reverberation, FFT convolution, PCM writing, clipping."""

import os

import numpy as np
import pytest
import soundfile as sf
from test_augment import SR, tone

from bccmt import augment as aug
from bccmt.audio import read_audio
from bccmt.augment import mix


@pytest.mark.parametrize("snr", [0.0, 5.0, 13.0, 20.0])
def test_add_noise_snr_within_0p1_db(snr):
    speech, noise = tone(SR * 2, 1), tone(SR // 3, 2)  # noise shorter: looped
    mixed = aug.add_noise(speech, noise, snr)
    assert mixed.shape == speech.shape
    assert abs(aug.achieved_snr(speech, mixed) - snr) < 0.1
    # after a 16-bit round trip too
    pcm = np.round(mixed * 32768) / 32768
    assert abs(aug.achieved_snr(speech, pcm) - snr) < 0.1


def test_fit_length_loops_and_crops():
    x = np.arange(3.0)
    assert aug.fit_length(x, 7).tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert aug.fit_length(x, 2).tolist() == [0, 1]


def test_add_foreground_places_noises_and_scales_each():
    speech = tone(SR, 3)
    n1, n2 = np.ones(1000), np.ones(5000)
    out = aug.add_foreground(speech, [n1, n2], [10.0, 0.0], [0, SR - 2000])
    added = out - speech
    assert np.allclose(added[1000:SR - 2000], 0.0)
    p = aug.power(speech)
    assert np.isclose(aug.power(added[:1000]), p / 10.0)
    assert np.isclose(aug.power(added[SR - 2000:]), p)  # cut at the end, scaled on what was added


def test_babble_is_sum_of_voices_at_their_snrs():
    speech = tone(SR, 4)
    voices = [tone(SR // 2, 10 + i) for i in range(3)]
    out = aug.mix_babble(speech, voices, [20.0, 17.0, 13.0])
    manual = speech.astype(np.float64) + sum(
        aug.scale_to_snr(aug.fit_length(v, SR), s, aug.power(speech))
        for v, s in zip(voices, [20.0, 17.0, 13.0]))
    assert np.allclose(out, manual)
    assert aug.achieved_snr(speech, out) < 13.0  # three voices are louder than the loudest one


def test_reverb_impulse_returns_input_and_keeps_alignment():
    speech = tone(SR, 5)
    rir = np.zeros(800)
    rir[123] = 0.5
    out = aug.reverberate(speech, rir)
    assert out.shape == speech.shape
    assert np.allclose(out, speech, atol=1e-6)
    # a real-ish RIR: same length, same power, direct path aligned (max cross-correlation at lag 0)
    rng = np.random.default_rng(0)
    rir = 0.3 * np.exp(-np.arange(3000) / 400.0) * rng.standard_normal(3000)
    rir[:50], rir[50] = 0.0, 1.0
    click = np.zeros(SR)
    click[4000] = 1.0
    out = aug.reverberate(click, rir)
    assert out.shape == click.shape and int(np.argmax(np.abs(out))) == 4000
    out = aug.reverberate(speech, rir)
    assert np.isclose(aug.power(out), aug.power(speech))


def test_fft_convolve_matches_direct_convolution():
    rng = np.random.default_rng(3)
    for n, m in [(1, 1), (100, 7), (977, 333), (4000, 1500)]:
        x, h = rng.standard_normal(n), rng.standard_normal(m)
        assert np.allclose(aug.fft_convolve(x, h), np.convolve(x, h), atol=1e-9)
    for n in (1, 2, 7, 97, 1000, 80001):
        f = mix._fast_len(n)
        assert f >= n and all(f % p for p in (7, 11, 13)) and (n < 2 or mix._fast_len(n) < 2 * n)


def test_write_pcm16_same_bytes_as_soundfile(tmp_path):
    from bccmt.augment.job import write_pcm16

    x = np.concatenate([tone(1000, 1), [1.5, -1.5, 0.5 / 32768]])
    write_pcm16(str(tmp_path / "a/b.wav"), x)
    pcm = np.clip(np.round(x * 32768), -32768, 32767).astype(np.int16)
    sf.write(str(tmp_path / "c.wav"), pcm, SR, subtype="PCM_16")
    assert (tmp_path / "a/b.wav").read_bytes() == (tmp_path / "c.wav").read_bytes()
    assert read_audio(str(tmp_path / "a/b.wav"))[-3:].tolist() == [32767 / 32768, -1.0, 0.0]
    assert sorted(os.listdir(tmp_path / "a")) == ["b.wav"]  # no temp file left


def test_avoid_clipping():
    x = np.array([0.5, -2.0, 1.0])
    y, gain = aug.avoid_clipping(x)
    assert gain == pytest.approx(aug.PEAK_LIMIT / 2.0) and np.max(np.abs(y)) <= aug.PEAK_LIMIT
    assert aug.avoid_clipping(np.array([0.5]))[1] == 1.0
