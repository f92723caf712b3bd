"""The augmentation sources on disk: MUSAN and RIRS_NOISES layouts, listed and checked.

  MUSAN        <musan>/{music,noise,speech}/<source>/*.wav     (openslr 17)
  RIRS_NOISES  <rirs>/simulated_rirs/{smallroom,mediumroom,largeroom}/Room*/Room*-*.wav (openslr 28)
"""

from __future__ import annotations

import glob
import os
from typing import Dict, List, Optional, Sequence

from bccmt.augment.mix import (MUSAN_KIND, MUSAN_LAYOUT, RATE, RIRS_LAYOUT, TYPES, AugmentConfig,
                               AugmentError, Source)


def _frames(path: str) -> int:
    import soundfile as sf

    try:
        info = sf.info(path)
    except (sf.SoundFileError, RuntimeError) as e:
        raise AugmentError(f"{path}: unreadable audio ({e})") from None
    if info.samplerate != RATE or info.channels != 1:
        raise AugmentError(f"{path}: {info.samplerate} Hz, {info.channels} channels; "
                           f"augmentation sources must be {RATE} Hz mono")
    return int(info.frames)


def list_musan(root: str, kind: str) -> List[Source]:
    """The wavs of <root>/<kind>/<source>/*.wav (kind: noise, music or speech), sorted, with their
    lengths (header only); each must be 16 kHz mono and non-empty."""
    if kind not in ("noise", "music", "speech"):
        raise ValueError(f"MUSAN kind must be noise, music or speech, got '{kind}'")
    if not os.path.isdir(root):
        raise AugmentError(f"MUSAN root {root} is not a directory; expected {MUSAN_LAYOUT}")
    paths = sorted(glob.glob(os.path.join(glob.escape(root), kind, "*", "*.wav")))
    if not paths:
        raise AugmentError(f"no {kind} files: nothing matches {os.path.join(root, kind, '*', '*.wav')}"
                           f"; expected {MUSAN_LAYOUT}")
    out = [Source(os.path.relpath(p, root), p, _frames(p)) for p in paths]
    empty = [s.path for s in out if s.frames == 0]
    if empty:
        raise AugmentError(f"{empty[0]}: empty audio file")
    return out


def list_rirs(root: str, rooms: Sequence[str] = AugmentConfig.rir_rooms) -> Dict[str, List[Source]]:
    """{room size: RIRs of <root>/simulated_rirs/<size>/Room*/Room*-*.wav, sorted} for ``rooms``."""
    if not os.path.isdir(root):
        raise AugmentError(f"RIRS_NOISES root {root} is not a directory; expected {RIRS_LAYOUT}")
    out = {}
    for size in rooms:
        pattern = os.path.join(glob.escape(root), "simulated_rirs", size, "Room*", "Room*-*.wav")
        paths = sorted(glob.glob(pattern))
        if not paths:
            raise AugmentError(f"no RIRs: nothing matches "
                               f"{os.path.join(root, 'simulated_rirs', size, 'Room*', 'Room*-*.wav')}"
                               f"; expected {RIRS_LAYOUT}")
        out[size] = [Source(os.path.relpath(p, root), p, 0) for p in paths]
    return out


def list_sources(aug_type: str, musan_root: Optional[str], rirs_root: Optional[str],
                 cfg: AugmentConfig = AugmentConfig()) -> Dict[str, List[Source]]:
    """{group: sources} for one type: the RIR room sizes for reverb, one MUSAN kind otherwise."""
    if aug_type == "reverb":
        if not rirs_root:
            raise AugmentError(f"reverb needs a RIRS_NOISES root: {RIRS_LAYOUT}")
        return list_rirs(rirs_root, cfg.rir_rooms)
    if aug_type not in MUSAN_KIND:
        raise ValueError(f"unknown augmentation type '{aug_type}'; valid: {', '.join(TYPES)}")
    if not musan_root:
        raise AugmentError(f"{aug_type} needs a MUSAN root: {MUSAN_LAYOUT}")
    kind = MUSAN_KIND[aug_type]
    return {kind: list_musan(musan_root, kind)}
