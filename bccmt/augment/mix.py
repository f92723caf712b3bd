"""Kaldi-style offline augmentation: additive noise at an SNR, babble, reverberation, and the plans
that say what each augmented utterance gets (Kaldi egs/voxceleb/v2 stage 2).

Waveforms are (N,) float arrays in [-1, 1] at 16 kHz. Signal power is the mean square over the
whole signal, as in Kaldi's wav-reverberate. Per type (defaults of AugmentConfig, Kaldi's values):
  reverb  one simulated RIR, room size smallroom or mediumroom with equal weight, then uniform
          within the size; output time-aligned to the direct path and rescaled to the input power
          (wav-reverberate --shift-output=true --normalize-output=true); length kept.
  noise   MUSAN noise as foreground: a noise starts at 0, the next one 1 s after the previous one
          ends, until the speech is covered; each at an SNR from {15, 10, 5, 0} dB against the
          speech (augment_data_dir.py --fg-interval 1 --fg-snrs 15:10:5:0). A noise is not looped.
  music   one MUSAN music file as background over the whole utterance, SNR from {15, 10, 8, 5}.
  babble  3-7 MUSAN speech files as background, each at an SNR from {20, 17, 15, 13} (drawn per
          voice, as Kaldi does, so the summed babble is louder than any one SNR says).
Background sources are looped when shorter than the speech; when longer, a random excerpt is used
(Kaldi always starts at the beginning of the file; a random offset gives more variety from the same
files). Everything random comes from rng_for(seed, type, utt), so an utterance's copy does not depend
on which job makes it.

Source layouts (the real corpora; the mini corpus imitates them):
  MUSAN        <musan>/{music,noise,speech}/<source>/*.wav     (openslr 17)
  RIRS_NOISES  <rirs>/simulated_rirs/{smallroom,mediumroom,largeroom}/Room*/Room*-*.wav (openslr 28)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

RATE = 16000
TYPES = ("reverb", "noise", "music", "babble")
MUSAN_KIND = {"noise": "noise", "music": "music", "babble": "speech"}  # type -> MUSAN folder
MUSAN_LAYOUT = "<musan>/{music,noise,speech}/<source>/*.wav (MUSAN, openslr.org/17)"
RIRS_LAYOUT = ("<rirs>/simulated_rirs/{smallroom,mediumroom,largeroom}/Room*/Room*-*.wav "
               "(RIRS_NOISES, openslr.org/28)")
PEAK_LIMIT = 32767.0 / 32768.0  # largest value that survives 16-bit PCM


class AugmentError(Exception):
    """Missing or unusable augmentation sources; the message names the path and expected layout."""


@dataclass(frozen=True)
class AugmentConfig:
    """Choices per type (Kaldi egs/voxceleb/v2/run.sh stage 2)."""

    noise_snrs: Tuple[float, ...] = (15.0, 10.0, 5.0, 0.0)  # dB, foreground noises
    noise_interval_s: float = 1.0  # silence between consecutive foreground noises
    music_snrs: Tuple[float, ...] = (15.0, 10.0, 8.0, 5.0)  # dB, one background music file
    babble_snrs: Tuple[float, ...] = (20.0, 17.0, 15.0, 13.0)  # dB, per babble voice
    babble_voices: Tuple[int, ...] = (3, 4, 5, 6, 7)  # number of MUSAN speech files summed
    rir_rooms: Tuple[str, ...] = ("smallroom", "mediumroom")  # equal weight


@dataclass(frozen=True)
class Source:
    rel: str  # path relative to the corpus root (written to aug_info)
    path: str  # full path
    frames: int  # length in samples (0: not looked up, e.g. RIRs)


@dataclass(frozen=True)
class Applied:
    """One source applied to an utterance (one line of aug_info)."""

    source: Source
    snr_db: Optional[float]  # None for a RIR
    at: int  # first sample of the speech it is added to
    offset: int  # first sample read from the source


def rng_for(seed: int, *tags: object) -> np.random.Generator:
    """A generator that depends only on (seed, tags): the same in every process, job and run."""
    key = "\t".join([str(seed)] + [str(t) for t in tags]).encode("utf-8")
    return np.random.default_rng(int.from_bytes(hashlib.sha256(key).digest()[:8], "little"))


# ---------------------------------------------------------------- signal maths (pure functions)
def power(x: np.ndarray) -> float:
    """Mean square of the whole signal (float64)."""
    x = np.asarray(x, dtype=np.float64)
    return float(np.dot(x, x) / len(x)) if len(x) else 0.0


def fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """Loops ``x`` (from its start) or crops it to exactly ``n`` samples."""
    if len(x) == 0:
        raise ValueError("cannot fit an empty signal")
    if len(x) >= n:
        return x[:n]
    return np.tile(x, -(-n // len(x)))[:n]


def scale_to_snr(noise: np.ndarray, snr_db: float, speech_power: float) -> np.ndarray:
    """``noise`` (float64) scaled so that 10 log10(speech_power / power(noise)) == snr_db.
    An all-zero noise stays zero."""
    noise = np.asarray(noise, dtype=np.float64)
    p = power(noise)
    if p <= 0.0:
        return np.zeros_like(noise)
    return noise * np.sqrt(speech_power * 10.0 ** (-snr_db / 10.0) / p)


def add_noise(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """speech + noise (looped/cropped to the speech length) at ``snr_db`` dB against the power of
    the whole speech. Returns float64 (N,); clipping is left to avoid_clipping()."""
    speech = np.asarray(speech, dtype=np.float64)
    return speech + scale_to_snr(fit_length(noise, len(speech)), snr_db, power(speech))


def add_foreground(speech: np.ndarray, noises: Sequence[np.ndarray], snrs: Sequence[float],
                   starts: Sequence[int]) -> np.ndarray:
    """speech plus each noise from sample ``starts[i]`` on (cut at the speech end, not looped), each
    at ``snrs[i]`` dB against the whole-speech power (its own power taken over the part added)."""
    out = np.asarray(speech, dtype=np.float64).copy()
    p = power(out)
    for noise, snr, at in zip(noises, snrs, starts):
        seg = np.asarray(noise, dtype=np.float64)[: max(len(out) - at, 0)]
        if len(seg):
            out[at: at + len(seg)] += scale_to_snr(seg, snr, p)
    return out


def mix_babble(speech: np.ndarray, voices: Sequence[np.ndarray], snrs: Sequence[float]) -> np.ndarray:
    """speech plus the sum of ``voices`` (each looped/cropped to the speech length), voice i at
    ``snrs[i]`` dB against the speech."""
    speech = np.asarray(speech, dtype=np.float64)
    p, n = power(speech), len(speech)
    out = speech.copy()
    for v, snr in zip(voices, snrs):
        out += scale_to_snr(fit_length(v, n), snr, p)
    return out


def _fast_len(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n (an FFT size numpy's pocketfft handles quickly)."""
    best = 1 << max(n - 1, 0).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def fft_convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Full linear convolution (len(x) + len(h) - 1,) float64, like scipy.signal.fftconvolve
    (numpy's FFT: a job then starts without importing scipy.signal, ~2 s of CPU here)."""
    n = len(x) + len(h) - 1
    size = _fast_len(n)
    y = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(h, size), size)
    return y[:n]


def reverberate(speech: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Convolves ``speech`` with ``rir`` like wav-reverberate --shift-output --normalize-output:
    the output is shifted by the RIR's peak index (direct path) so it stays time-aligned, keeps the
    input length, and is rescaled to the input's power. An impulse RIR returns the input."""
    speech = np.asarray(speech, dtype=np.float64)
    rir = np.asarray(rir, dtype=np.float64)
    energy = float(np.dot(rir, rir))
    if len(rir) == 0 or energy <= 0.0:
        raise ValueError("RIR is empty or all zeros")
    rir = rir / np.sqrt(energy)
    peak = int(np.argmax(np.abs(rir)))
    out = fft_convolve(speech, rir)[peak: peak + len(speech)]
    p_out = power(out)
    return out * np.sqrt(power(speech) / p_out) if p_out > 0.0 else out


def avoid_clipping(x: np.ndarray, limit: float = PEAK_LIMIT) -> Tuple[np.ndarray, float]:
    """(x scaled down so that max |x| <= limit, the gain used: 1.0 when nothing was done)."""
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak <= limit:
        return x, 1.0
    gain = limit / peak
    return x * gain, gain


def achieved_snr(speech: np.ndarray, mixed: np.ndarray) -> float:
    """10 log10(power(speech) / power(mixed - speech)) in dB."""
    speech = np.asarray(speech, dtype=np.float64)
    return 10.0 * np.log10(power(speech) / power(np.asarray(mixed, np.float64) - speech))


# ---------------------------------------------------------------- plans
def _background(rng: np.random.Generator, src: Source, snr: float, n: int) -> Applied:
    offset = int(rng.integers(0, src.frames - n + 1)) if src.frames > n else 0
    return Applied(src, snr, 0, offset)


def make_plan(aug_type: str, rng: np.random.Generator, n: int, sources: Dict[str, List[Source]],
              cfg: AugmentConfig = AugmentConfig()) -> List[Applied]:
    """What to apply to an utterance of ``n`` samples (see the module doc for each type)."""
    if aug_type == "reverb":
        rooms = [r for r in cfg.rir_rooms if sources.get(r)]
        room = rooms[int(rng.integers(len(rooms)))]
        rirs = sources[room]
        return [Applied(rirs[int(rng.integers(len(rirs)))], None, 0, 0)]
    pool = sources[MUSAN_KIND[aug_type]]
    if aug_type == "noise":
        plan, at = [], 0
        while at < n:
            src = pool[int(rng.integers(len(pool)))]
            plan.append(Applied(src, float(rng.choice(cfg.noise_snrs)), at, 0))
            at += src.frames + int(round(cfg.noise_interval_s * RATE))
        return plan
    if aug_type == "music":
        src = pool[int(rng.integers(len(pool)))]
        return [_background(rng, src, float(rng.choice(cfg.music_snrs)), n)]
    if aug_type == "babble":
        k = int(rng.choice(cfg.babble_voices))
        idx = rng.choice(len(pool), size=k, replace=len(pool) < k)
        return [_background(rng, pool[int(i)], float(rng.choice(cfg.babble_snrs)), n) for i in idx]
    raise ValueError(f"unknown augmentation type '{aug_type}'; valid: {', '.join(TYPES)}")


Reader = Callable[[Source, int, int], np.ndarray]  # (source, offset, frames or -1 for all) -> wave


def apply_plan(aug_type: str, speech: np.ndarray, plan: Sequence[Applied], read: Reader) -> np.ndarray:
    """The augmented utterance (float64, same length as ``speech``), reading sources with ``read``."""
    n = len(speech)
    if aug_type == "reverb":
        return reverberate(speech, read(plan[0].source, 0, -1))
    if aug_type == "noise":
        noises = [read(a.source, a.offset, min(a.source.frames, n - a.at)) for a in plan]
        return add_foreground(speech, noises, [a.snr_db for a in plan], [a.at for a in plan])
    bg = [read(a.source, a.offset, min(a.source.frames - a.offset, n)) for a in plan]
    return mix_babble(speech, bg, [a.snr_db for a in plan])


def select_subset(utts: Sequence[str], n: Optional[int], seed: int, aug_type: str) -> List[str]:
    """``n`` utterances drawn from ``utts`` with rng_for(seed, type, 'subset') (all when n is None
    or >= len(utts)), in the order of ``utts``. Each type gets its own subset."""
    if n is None or n >= len(utts):
        return list(utts)
    if n <= 0:
        raise ValueError(f"subset size must be positive, got {n}")
    keep = set(rng_for(seed, aug_type, "subset").choice(len(utts), size=n, replace=False).tolist())
    return [u for i, u in enumerate(utts) if i in keep]
