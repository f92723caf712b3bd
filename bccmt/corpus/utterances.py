"""Speech of one synthetic speaker: eSpeak text -> 16 kHz -> timbre -> duration fit -> channel.

``render_speaker`` is one work unit of the maker. It must run in a fresh process (the maker uses a
forked pool with one task per child): eSpeak output depends on what the process synthesized
before, so a fixed order inside a fresh process is what makes the result independent of --nj.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Tuple

import numpy as np
import soundfile as sf

from bccmt.corpus.channel import (SR, apply_channel, draw_channel, jitter_noise, redraw_noise,
                                   to_int16)
from bccmt.corpus.config import CorpusConfig
from bccmt.corpus.espeak import EspeakEngine, to_16k
from bccmt.corpus.layout import SpeakerPlan
from bccmt.corpus.speakers import Speaker, apply_tilt, rng_for
from bccmt.corpus.text import sentence

_ENGINE: Optional[EspeakEngine] = None


def engine() -> EspeakEngine:
    """This process's engine (created on first use, in the worker)."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = EspeakEngine()
    return _ENGINE


def write_wav(path: str, x: np.ndarray) -> None:
    """16 kHz mono int16 PCM, written to a temp name and renamed."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}.wav"
    sf.write(tmp, to_int16(x), SR, subtype="PCM_16")
    os.replace(tmp, path)


def _trim(x: np.ndarray, thresh: float = 0.01) -> np.ndarray:
    idx = np.flatnonzero(np.abs(x) > thresh)
    return x[idx[0]: idx[-1] + 1] if idx.size else x[:0]


def _cut_near(x: np.ndarray, n: int) -> np.ndarray:
    """Cuts to at most ``n`` samples, at the quietest 10 ms frame of the last 0.3 s, with a fade."""
    win, hop = int(0.3 * SR), int(0.01 * SR)
    lo, hi = max(hop, n - win), min(len(x), n) - hop + 1
    if hi > lo:
        starts = np.arange(lo, hi, hop)
        energy = [float(np.sum(x[s: s + hop] ** 2)) for s in starts]
        n = int(starts[int(np.argmin(energy))]) + hop
    y = x[:n].copy()
    fade = min(len(y), int(0.02 * SR))
    y[len(y) - fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return y


def speak(spk: Speaker, rng: np.random.Generator, dur: float) -> np.ndarray:
    """About ``dur`` seconds of clean speech in the speaker's voice and timbre (float32, 16 kHz)."""
    eng = engine()
    eng.set_voice(spk.language, spk.variant, spk.pitch, spk.pitch_range, spk.rate)
    target = int(dur * SR)
    words_per_s = spk.rate / 60.0
    pieces: List[np.ndarray] = []
    total = 0
    for _ in range(6):  # sentences until long enough (usually one)
        need = (target - total) / SR
        text = sentence(rng, max(2, int(np.ceil(need * words_per_s * 1.3 * spk.warp))))
        x = _trim(apply_tilt(to_16k(eng.synth(text), spk.warp), spk.tilt))
        gap = np.zeros(int(rng.uniform(0.15, 0.4) * SR), dtype=np.float32)
        pieces += [gap, x]
        total += len(gap) + len(x)
        if total >= target:
            break
    y = np.concatenate(pieces)
    if len(y) > target:
        y = _cut_near(y, target)
    return y.astype(np.float32)


def render_speaker(args: Tuple[CorpusConfig, SpeakerPlan, str]) -> List[Tuple[str, float]]:
    """Writes every utterance of one speaker -> [(relative wav path, seconds)]."""
    cfg, plan, root = args
    spk = plan.speaker
    channels: Dict[str, object] = {}
    out = []
    for utt in plan.utts:
        video = utt.split("/")[1]
        if video not in channels:
            channels[video] = draw_channel(rng_for(cfg.seed, "channel", spk.spk_id, video),
                                           cfg.channel)
        rng = rng_for(cfg.seed, "utt", utt)
        dur = float(rng.uniform(cfg.utt_dur[0], cfg.utt_dur[1]))
        x = speak(spk, rng, dur)
        lo = int(cfg.utt_dur[0] * SR)
        if len(x) < lo:  # pad with silence (the channel noise fills it)
            x = np.concatenate([x, np.zeros(lo - len(x), dtype=np.float32)])
        ch = channels[video]
        if cfg.channel.noise_per == "utterance":
            ch = redraw_noise(ch, rng_for(cfg.seed, "noise", utt), cfg.channel)
        else:
            ch = jitter_noise(ch, rng_for(cfg.seed, "noise", utt), cfg.channel)
        y = apply_channel(x, ch, rng, cfg.channel.snr_jitter_db)
        rel = f"{plan.wav_dir}/{utt}.wav"
        write_wav(os.path.join(root, rel), y)
        out.append((rel, len(y) / SR))
    return out
