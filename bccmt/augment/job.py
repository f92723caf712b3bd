"""One augmentation job: a part of a data dir -> augmented 16-bit wavs plus table fragments (stage 1).

The job takes the sorted utterances of <src>/wav.scp (optionally a seeded random subset per type,
see bccmt.augment.select_subset), keeps part ``job`` of ``num_jobs`` contiguous parts, and for each
utterance writes <wav_dir>/<utt>.wav (atomically: temp name, then rename). Outputs for
``out_prefix`` P:
  P.wav.scp   ``<utt>-<type> /abs/<wav_dir>/<utt>.wav``
  P.utt2spk   ``<utt>-<type> <spk>`` (the speaker of <utt>)
  P.utt2dur   ``<utt>-<type> <seconds>``
  P.aug_info  ``<utt>-<type> <type> <source> <snr_db|-> <at_s> <offset_s>``, one line per source
              applied (source relative to the MUSAN / RIRS_NOISES root; at_s: where in the
              utterance it starts; offset_s: where in the source file reading started)
  P.skipped   ``<utt> <reason>`` for source utterances whose audio could not be read
  P.rescaled  ``<utt>-<type> <gain>`` for outputs scaled down to avoid clipping 16-bit PCM
All are written under temp names and renamed at the end, P.wav.scp last. The result for an
utterance depends only on (seed, type, utt id), not on the number of jobs.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import time
import wave
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from bccmt import augment as aug
from bccmt.audio import AudioError, read_audio
from bccmt.io.tables import c_order, read_kv

log = logging.getLogger(__name__)
OUTPUTS = ("utt2spk", "utt2dur", "aug_info", "skipped", "rescaled", "wav.scp")  # wav.scp last


class AugmentJobError(RuntimeError):
    """Bad job arguments or data (the message names the file or utterance)."""


def _check_rate_mono(snd, path: str) -> None:
    if snd.samplerate != aug.RATE or snd.channels != 1:
        raise aug.AugmentError(f"{path}: {snd.samplerate} Hz, {snd.channels} channels; "
                               f"augmentation sources must be {aug.RATE} Hz mono")


def read_source(src: aug.Source, offset: int, frames: int) -> np.ndarray:
    """Samples [offset, offset + frames) of a source wav (frames -1: to the end), float32."""
    if frames < 0 and offset == 0:
        return _read_whole(src.path)
    import soundfile as sf

    try:
        with sf.SoundFile(src.path) as snd:
            _check_rate_mono(snd, src.path)
            snd.seek(offset)
            x = snd.read(frames, dtype="float32", always_2d=True)[:, 0]
    except (sf.SoundFileError, RuntimeError) as e:
        raise aug.AugmentError(f"{src.path}: unreadable audio ({e})") from None
    if len(x) == 0:
        raise aug.AugmentError(f"{src.path}: no samples at offset {offset}")
    return x


@functools.lru_cache(maxsize=2048)  # RIRs: a few thousand short files are reused all the time
def _read_whole(path: str) -> np.ndarray:
    import soundfile as sf

    try:
        with sf.SoundFile(path) as snd:
            _check_rate_mono(snd, path)
            x = snd.read(dtype="float32", always_2d=True)[:, 0]
    except (sf.SoundFileError, RuntimeError) as e:
        raise aug.AugmentError(f"{path}: unreadable audio ({e})") from None
    if len(x) == 0:
        raise aug.AugmentError(f"{path}: empty audio file")
    x.setflags(write=False)
    return x


def wav_path(wav_dir: str, utt: str) -> str:
    """<wav_dir>/<utt>.wav; path-like ids (spk/video/n) become sub-folders."""
    parts = utt.split("/")
    if utt.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise AugmentJobError(f"utterance id '{utt}' cannot be used as a file path")
    return os.path.join(wav_dir, *parts[:-1], parts[-1] + ".wav")


def write_pcm16(path: str, x: np.ndarray) -> None:
    """Writes float [-1, 1] as 16-bit PCM mono wav (x * 32768, rounded, clipped), atomically.
    The stdlib wave writer gives the same bytes as soundfile's PCM_16 wav, without the fsync that
    libsndfile does on every close (half of a job's time on this machine)."""
    pcm = np.clip(np.round(np.asarray(x, np.float64) * 32768.0), -32768, 32767).astype("<i2")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with wave.open(tmp, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(aug.RATE)
            w.writeframes(pcm.tobytes())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def info_lines(new_utt: str, aug_type: str, plan: Sequence[aug.Applied]) -> List[str]:
    out = []
    for a in plan:
        snr = "-" if a.snr_db is None else f"{a.snr_db:g}"
        out.append(f"{new_utt} {aug_type} {a.source.rel} {snr} {a.at / aug.RATE:.3f} "
                   f"{a.offset / aug.RATE:.3f}")
    return out


def job_utterances(utts: Sequence[str], subset: Optional[int], seed: int, aug_type: str,
                   job: int, num_jobs: int) -> List[str]:
    """Part ``job`` (1-based) of ``num_jobs`` contiguous parts of the (subset of the) sorted ids."""
    from bccmt.data.datadir import split_scp

    chosen = aug.select_subset(sorted(utts, key=c_order), subset, seed, aug_type)
    if not 1 <= job <= num_jobs:
        raise AugmentJobError(f"job {job} is not in 1..{num_jobs}")
    if len(chosen) < num_jobs:
        raise AugmentJobError(f"{len(chosen)} utterances cannot be split into {num_jobs} jobs")
    return split_scp(chosen, num_jobs)[job - 1]


def _write_outputs(prefix: str, tables: Dict[str, List[str]]) -> None:
    for name in OUTPUTS:
        with open(f"{prefix}.{name}.tmp", "w", encoding="utf-8") as f:
            f.writelines(line + "\n" for line in tables[name])
    for name in OUTPUTS:
        os.replace(f"{prefix}.{name}.tmp", f"{prefix}.{name}")


def keep_freed_memory() -> None:
    """glibc hands every freed buffer over 128 KB back to the OS, so each utterance's arrays are
    page-faulted in again: about a third of a job's CPU time here. Raising the mmap/trim
    thresholds (glibc mallopt; a no-op elsewhere) keeps them in the heap for reuse."""
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(-3, 64 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 256 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def augment_part(src_dir: str, aug_type: str, out_prefix: str, wav_dir: str,
                 musan_root: Optional[str], rirs_root: Optional[str], seed: int = 1234,
                 subset: Optional[int] = None, job: int = 1, num_jobs: int = 1,
                 progress_every: int = 500, cfg: aug.AugmentConfig = aug.AugmentConfig()
                 ) -> Dict[str, float]:
    """Augments this job's utterances of ``src_dir`` with ``aug_type`` (see the module doc).
    Returns {"done", "skipped", "rescaled", "audio_seconds", "elapsed_seconds"}."""
    if aug_type not in aug.TYPES:
        raise AugmentJobError(f"unknown type '{aug_type}'; valid: {', '.join(aug.TYPES)}")
    if os.path.exists(f"{out_prefix}.wav.scp"):
        os.unlink(f"{out_prefix}.wav.scp")  # a stale result must not look finished
    wavs = read_kv(os.path.join(src_dir, "wav.scp"))
    utt2spk = read_kv(os.path.join(src_dir, "utt2spk"))
    utts = job_utterances(list(wavs), subset, seed, aug_type, job, num_jobs)
    sources = aug.list_sources(aug_type, musan_root, rirs_root, cfg)
    log.info("%s job %d/%d: %d utterances of %s; sources: %s", aug_type, job, num_jobs, len(utts),
             src_dir, ", ".join(f"{len(v)} {k}" for k, v in sources.items()))
    wav_dir = os.path.abspath(wav_dir)
    keep_freed_memory()
    tables: Dict[str, List[str]] = {name: [] for name in OUTPUTS}
    t0, audio_s = time.time(), 0.0
    for i, utt in enumerate(utts, 1):
        if utt not in utt2spk:
            raise AugmentJobError(f"{src_dir}/utt2spk has no speaker for '{utt}'")
        try:
            speech = read_audio(wavs[utt])
        except AudioError as e:
            log.warning("%s: skipped: %s", utt, e)
            tables["skipped"].append(f"{utt} {e}")
            continue
        new_utt = f"{utt}-{aug_type}"
        plan = aug.make_plan(aug_type, aug.rng_for(seed, aug_type, utt), len(speech), sources, cfg)
        y, gain = aug.avoid_clipping(aug.apply_plan(aug_type, speech, plan, read_source))
        if gain != 1.0:
            tables["rescaled"].append(f"{new_utt} {gain:.4f}")
        path = wav_path(wav_dir, utt)
        write_pcm16(path, y)
        tables["wav.scp"].append(f"{new_utt} {path}")
        tables["utt2spk"].append(f"{new_utt} {utt2spk[utt]}")
        tables["utt2dur"].append(f"{new_utt} {len(y) / aug.RATE:.4f}")
        tables["aug_info"].extend(info_lines(new_utt, aug_type, plan))
        audio_s += len(y) / aug.RATE
        if progress_every and i % progress_every == 0:
            el = time.time() - t0
            log.info("%s job %d: %d/%d utterances, %.1f utt/s", aug_type, job, i, len(utts), i / el)
    _write_outputs(out_prefix, tables)
    el = time.time() - t0
    stats = {"done": len(tables["wav.scp"]), "skipped": len(tables["skipped"]),
             "rescaled": len(tables["rescaled"]), "audio_seconds": audio_s, "elapsed_seconds": el}
    log.info("%s job %d/%d done: %d utterances (%.1f s of audio) in %.1f s, %d skipped, "
             "%d rescaled to avoid clipping", aug_type, job, num_jobs, stats["done"], audio_s, el,
             stats["skipped"], stats["rescaled"])
    return stats
