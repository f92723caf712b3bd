"""Recording channels of the mini corpus: band limit / EQ, synthetic reverberation, coloured noise,
gain. A channel (``Channel``) is drawn once per session from ``ChannelSpace`` (independently of the
speaker); the noise realisation and a small SNR jitter are drawn per utterance.

All signals are (N,) float32 at 16 kHz in [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import List, Optional, Tuple

import numpy as np
from scipy.fft import next_fast_len
from scipy.signal import butter, fftconvolve, sosfilt

from bccmt.corpus.config import ChannelSpace

SR = 16000


def coloured_noise(rng: np.random.Generator, n: int, beta: float) -> np.ndarray:
    """Gaussian noise with a 1/f^beta power spectrum (0 white, 1 pink, 2 brown), unit RMS."""
    m = next_fast_len(max(n, 2), real=True)  # a prime length would make the FFT very slow
    spec = rng.standard_normal(m // 2 + 1) + 1j * rng.standard_normal(m // 2 + 1)
    f = np.fft.rfftfreq(m, 1.0 / SR)
    f[0] = f[1]
    spec *= f ** (-beta / 2.0)
    x = np.fft.irfft(spec, m)[:n]
    rms = np.sqrt(np.mean(x ** 2)) if n else 0.0
    return (x / rms if rms > 0 else x).astype(np.float32)


def synthetic_rir(rng: np.random.Generator, rt60: float, max_len_s: float = 1.0) -> np.ndarray:
    """Exponentially decaying Gaussian noise (-60 dB after ``rt60`` s) after a direct-path impulse
    and a short pre-delay; unit energy. -> (L,) float32."""
    n = int(min(max(rt60 * 1.2, 0.05), max_len_s) * SR)
    t = np.arange(n) / SR
    h = rng.standard_normal(n) * np.exp(-6.908 * t / rt60)
    delay = int(rng.integers(int(0.002 * SR), int(0.01 * SR)))
    h[:delay] = 0.0
    h[0] = 1.0 + 2.0 * rng.random()  # direct path: direct-to-reverberant ratio varies
    return (h / np.sqrt(np.sum(h ** 2))).astype(np.float32)


def peaking_sos(f0: float, gain_db: float, q: float) -> np.ndarray:
    """RBJ-cookbook peaking EQ biquad as a (1, 6) sos row."""
    a = 10 ** (gain_db / 40.0)
    w0 = 2 * np.pi * f0 / SR
    alpha = np.sin(w0) / (2 * q)
    b = [1 + alpha * a, -2 * np.cos(w0), 1 - alpha * a]
    den = [1 + alpha / a, -2 * np.cos(w0), 1 - alpha / a]
    return np.array([b + den]) / den[0]


@dataclass
class Channel:
    band: str  # "full" | "telephone" | "bandlimit"
    highpass_hz: float = 0.0
    lowpass_hz: float = 0.0
    eq: List[Tuple[float, float, float]] = field(default_factory=list)  # (f0 Hz, gain dB, Q)
    rt60: float = 0.0  # 0 = no reverberation
    rir: Optional[np.ndarray] = None
    snr_db: Optional[float] = None  # None = no added noise
    noise_beta: float = 0.0
    peak_dbfs: float = -3.0


def _uniform(rng: np.random.Generator, lo_hi) -> float:
    return float(rng.uniform(lo_hi[0], lo_hi[1]))


def draw_channel(rng: np.random.Generator, space: ChannelSpace) -> Channel:
    """One session's channel (draw order fixed: reproducible for a given generator)."""
    u = rng.random()
    if u < space.p_telephone:
        ch = Channel(band="telephone", highpass_hz=300.0, lowpass_hz=3400.0)
    elif u < space.p_telephone + space.p_bandlimit:
        ch = Channel(band="bandlimit", highpass_hz=_uniform(rng, space.highpass_hz),
                     lowpass_hz=_uniform(rng, space.lowpass_hz))
    else:
        ch = Channel(band="full")
    for _ in range(int(rng.integers(space.eq_bands[0], space.eq_bands[1] + 1))):
        f0 = float(np.exp(rng.uniform(np.log(150.0), np.log(6000.0))))
        ch.eq.append((f0, _uniform(rng, [-space.eq_gain_db, space.eq_gain_db]),
                      float(rng.uniform(0.5, 3.0))))
    if rng.random() < space.p_reverb:
        ch.rt60 = _uniform(rng, space.rt60)
        ch.rir = synthetic_rir(rng, ch.rt60)
    if rng.random() < space.p_noise:
        ch.snr_db = _uniform(rng, space.snr_db)
        ch.noise_beta = _uniform(rng, space.noise_color)
    ch.peak_dbfs = _uniform(rng, space.peak_dbfs)
    return ch


def redraw_noise(ch: Channel, rng: np.random.Generator, space: ChannelSpace) -> Channel:
    """A copy of ``ch`` with its own draw of the noise (presence, SNR, colour) from ``rng``."""
    snr_db, beta = None, 0.0
    if rng.random() < space.p_noise:
        snr_db = _uniform(rng, space.snr_db)
        beta = _uniform(rng, space.noise_color)
    return replace(ch, snr_db=snr_db, noise_beta=beta)


def jitter_noise(ch: Channel, rng: np.random.Generator, space: ChannelSpace) -> Channel:
    """A copy of ``ch`` whose noise colour deviates from the session's by U(-j, j), j =
    ``space.color_jitter`` (kept inside ``space.noise_color``): the session sets the noise character,
    each utterance varies it a little. Draws nothing when j is 0 (older corpora stay identical)."""
    if space.color_jitter <= 0 or ch.snr_db is None:
        return ch
    lo, hi = space.noise_color
    beta = ch.noise_beta + float(rng.uniform(-space.color_jitter, space.color_jitter))
    return replace(ch, noise_beta=float(np.clip(beta, lo, hi)))


def apply_channel(x: np.ndarray, ch: Channel, rng: np.random.Generator,
                  snr_jitter_db: float = 0.0) -> np.ndarray:
    """Band/EQ -> reverb -> noise at the (jittered) SNR -> gain to the channel's peak level.
    ``rng`` is the utterance's generator (noise realisation, SNR jitter). -> (N,) float32."""
    y = x.astype(np.float64)
    if ch.band != "full":
        y = sosfilt(butter(4, [ch.highpass_hz, ch.lowpass_hz], btype="bandpass", fs=SR,
                           output="sos"), y)
    for f0, gain_db, q in ch.eq:
        y = sosfilt(peaking_sos(f0, gain_db, q), y)
    if ch.rir is not None:
        y = fftconvolve(y, ch.rir)[: len(y)]
    jitter = float(rng.uniform(-snr_jitter_db, snr_jitter_db))
    if ch.snr_db is not None and len(y):
        active = y[np.abs(y) > 0.05 * np.max(np.abs(y))] if np.any(y) else y
        p_sig = float(np.mean(active ** 2)) if active.size else 0.0
        noise = coloured_noise(rng, len(y), ch.noise_beta)
        y = y + noise * np.sqrt(p_sig / 10 ** ((ch.snr_db + jitter) / 10.0))
    peak = np.max(np.abs(y)) if len(y) else 0.0
    if peak > 0:
        y = y * (10 ** (ch.peak_dbfs / 20.0) / peak)
    return np.clip(y, -1.0, 1.0).astype(np.float32)


def to_int16(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)
