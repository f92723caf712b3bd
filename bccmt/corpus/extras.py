"""MUSAN-like and RIRS_NOISES-like material for augmentation (all synthetic, 16 kHz mono int16).

  musan/noise/synthetic/noise-synthetic-NNNN.wav    coloured noise, hum, modulated / bursty noise
  musan/music/synthetic/music-synthetic-NNNN.wav    chords of harmonic tones with a rhythm
  musan/speech/synthetic/speech-synthetic-NNNN.wav  eSpeak speech of extra (non train/test) speakers
  rirs_noises/simulated_rirs/{small,medium,large}room/RoomNNN/RoomNNN-NNNNN.wav
"""

from __future__ import annotations

import os
from typing import List, Tuple

import numpy as np

from bccmt.corpus.channel import SR, coloured_noise, synthetic_rir
from bccmt.corpus.config import CorpusConfig
from bccmt.corpus.speakers import Speaker, rng_for
from bccmt.corpus.utterances import speak, write_wav

ROOM_RT60 = {"smallroom": (0.15, 0.4), "mediumroom": (0.3, 0.7), "largeroom": (0.5, 1.2)}


def _dur(cfg: CorpusConfig, rng: np.random.Generator) -> int:
    return int(rng.uniform(cfg.extras.file_dur[0], cfg.extras.file_dur[1]) * SR)


def noise_signal(rng: np.random.Generator, n: int) -> np.ndarray:
    kind = int(rng.integers(4))
    x = coloured_noise(rng, n, float(rng.uniform(0.0, 2.0)))
    t = np.arange(n) / SR
    if kind == 1:  # mains hum with harmonics on top
        f0 = float(rng.choice([50.0, 60.0]))
        x = 0.3 * x + sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
    elif kind == 2:  # slowly modulated (traffic / wind like)
        x = x * (0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.1, 1.0) * t))
    elif kind == 3:  # bursts
        env = np.repeat(rng.random(n // 1600 + 1) < 0.3, 1600)[:n].astype(np.float64)
        x = x * (0.1 + env)
    return x / np.max(np.abs(x)) * 0.7


def music_signal(rng: np.random.Generator, n: int) -> np.ndarray:
    """Chords of harmonic tones, one chord per beat, with a plucked envelope."""
    beat = int(SR * 60.0 / rng.uniform(70, 160))
    root = 110.0 * 2 ** (int(rng.integers(0, 24)) / 12.0)
    n_harm = int(rng.integers(1, 6))
    y = np.zeros(n)
    t = np.arange(beat) / SR
    env = np.exp(-t * rng.uniform(2.0, 8.0))
    for start in range(0, n, beat):
        deg = int(rng.choice([0, 2, 4, 5, 7, 9]))
        chord = [deg, deg + 4, deg + 7] if rng.random() < 0.5 else [deg, deg + 3, deg + 7]
        seg = sum(np.sin(2 * np.pi * root * 2 ** (s / 12.0) * h * t) / h
                  for s in chord for h in range(1, n_harm + 1))
        m = min(beat, n - start)
        y[start: start + m] += (seg * env)[:m]
    return (y / np.max(np.abs(y)) * 0.7).astype(np.float32)


def _render_musan(kind: str, signal, args: Tuple[CorpusConfig, str, int]) -> List[Tuple[str, float]]:
    """One synthetic MUSAN-layout file ``musan/<kind>/synthetic/<kind>-synthetic-NNNN.wav``."""
    cfg, root, i = args
    rng = rng_for(cfg.seed, f"musan-{kind}", i)
    rel = f"musan/{kind}/synthetic/{kind}-synthetic-{i:04d}.wav"
    x = signal(rng, _dur(cfg, rng))
    write_wav(os.path.join(root, rel), x)
    return [(rel, len(x) / SR)]


def render_noise(args: Tuple[CorpusConfig, str, int]) -> List[Tuple[str, float]]:
    return _render_musan("noise", noise_signal, args)


def render_music(args: Tuple[CorpusConfig, str, int]) -> List[Tuple[str, float]]:
    return _render_musan("music", music_signal, args)


def render_speech(args: Tuple[CorpusConfig, str, int, Speaker]) -> List[Tuple[str, float]]:
    """Clean eSpeak speech of one extra speaker (runs in a fresh process, like render_speaker)."""
    cfg, root, i, spk = args
    rng = rng_for(cfg.seed, "musan-speech", spk.spk_id)
    rel = f"musan/speech/synthetic/speech-synthetic-{i:04d}.wav"
    x = speak(spk, rng, _dur(cfg, rng) / SR)
    write_wav(os.path.join(root, rel), 0.7 * x / max(float(np.max(np.abs(x))), 1e-9))
    return [(rel, len(x) / SR)]


def render_rirs(args: Tuple[CorpusConfig, str, str]) -> List[Tuple[str, float]]:
    """All RIRs of one room size; each room has its own RT60, its RIRs vary around it."""
    cfg, root, size = args
    out = []
    lo, hi = ROOM_RT60[size]
    for r in range(1, cfg.extras.rooms_per_size + 1):
        rng = rng_for(cfg.seed, "rir", size, r)
        rt60 = float(rng.uniform(lo, hi))
        for k in range(1, cfg.extras.rirs_per_room + 1):
            h = synthetic_rir(rng, rt60 * float(rng.uniform(0.9, 1.1)), max_len_s=1.5)
            rel = f"rirs_noises/simulated_rirs/{size}/Room{r:03d}/Room{r:03d}-{k:05d}.wav"
            write_wav(os.path.join(root, rel), 0.9 * h / float(np.max(np.abs(h))))
            out.append((rel, len(h) / SR))
    return out
