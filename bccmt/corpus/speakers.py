"""Synthetic speakers: a fixed, unique combination of eSpeak voice settings and a DSP timbre.

A speaker = language voice + variant + base pitch + pitch range + rate (eSpeak) + frequency warp
(resampling-based formant/F0 shift, see bccmt.corpus.espeak.to_16k) + spectral tilt (first-order
filter). Parameters are quantised on the grid of ``SpeakerSpace`` and the whole tuple is unique
across every speaker of the corpus (train, test and the extra MUSAN-speech speakers).
"""

from __future__ import annotations

import hashlib
from dataclasses import astuple, dataclass
from typing import Iterable, List, Set, Tuple

import numpy as np
from scipy.signal import lfilter

from bccmt.corpus.config import SpeakerSpace
from bccmt.corpus.espeak import DETERMINISTIC_VARIANTS


def rng_for(seed: int, *tags: object) -> np.random.Generator:
    """A generator that depends only on (seed, tags): stable across processes and runs."""
    key = "/".join([str(seed)] + [str(t) for t in tags]).encode()
    return np.random.default_rng(int.from_bytes(hashlib.sha256(key).digest()[:8], "little"))


@dataclass(frozen=True)
class Speaker:
    spk_id: str  # e.g. id00001
    gender: str  # "m" | "f"
    language: str  # eSpeak language voice, e.g. "de"
    variant: str  # eSpeak variant file name (on DETERMINISTIC_VARIANTS)
    pitch: int  # eSpeak base pitch 0-100
    pitch_range: int  # eSpeak pitch range 0-100
    rate: int  # words per minute
    warp: float  # formant/F0 warp factor (> 1: shorter vocal tract)
    tilt: float  # spectral tilt coefficient in (-1, 1); > 0 brighter, < 0 darker

    def combo(self) -> Tuple:
        """The parameter tuple that must be unique per speaker (everything but the id)."""
        return astuple(self)[1:]


def _grid(rng: np.random.Generator, lo_hi: Iterable[float], step: float) -> float:
    lo, hi = lo_hi
    n = int(np.floor((hi - lo) / step + 1e-9))
    return lo + step * int(rng.integers(0, n + 1))


def draw_speakers(ids: List[str], space: SpeakerSpace, seed: int, tag: str,
                  taken: Set[Tuple]) -> List[Speaker]:
    """Draws one speaker per id with a combination not in ``taken`` (which is updated)."""
    rng = rng_for(seed, "speakers", tag)
    out = []
    for spk_id in ids:
        for _attempt in range(1000):
            female = rng.random() < space.female_fraction
            gender = "f" if female else "m"
            variants = DETERMINISTIC_VARIANTS["female" if female else "male"]
            spk = Speaker(
                spk_id=spk_id,
                gender=gender,
                language=space.languages[int(rng.integers(len(space.languages)))],
                variant=variants[int(rng.integers(len(variants)))],
                pitch=int(round(_grid(rng, space.pitch_female if female else space.pitch_male,
                                      space.pitch_step))),
                pitch_range=int(round(_grid(rng, space.pitch_range, space.pitch_range_step))),
                rate=int(round(_grid(rng, space.rate, space.rate_step))),
                warp=round(_grid(rng, space.warp_female if female else space.warp_male,
                                 space.warp_step), 4),
                tilt=round(_grid(rng, space.tilt, space.tilt_step), 4),
            )
            if spk.combo() not in taken:
                taken.add(spk.combo())
                out.append(spk)
                break
        else:
            raise ValueError(f"could not draw a unique speaker for {spk_id}: the speaker grid is "
                             f"too small for this many speakers (reduce the *_step values)")
    return out


def apply_tilt(x: np.ndarray, tilt: float) -> np.ndarray:
    """First-order spectral tilt: tilt > 0 pre-emphasis (x[n] - t x[n-1]); tilt < 0 one-pole
    low-pass ((1-|t|) x[n] + |t| y[n-1]). Output peak-normalised to 0.9. x: (N,) float32."""
    t = float(tilt)
    if abs(t) < 1e-6 or x.size == 0:
        return x
    if t > 0:
        y = lfilter([1.0, -t], [1.0], x)
    else:
        y = lfilter([1.0 - abs(t)], [1.0, -abs(t)], x)
    peak = np.max(np.abs(y))
    return (y * (0.9 / peak) if peak > 0 else y).astype(np.float32)
