"""One feature-extraction job: a wav.scp (part) -> fbank ark/scp + utt2num_frames (stage 1).

Outputs for ``out_prefix`` P (e.g. fbank/raw_fbank_vox1.3):
  P.ark             Kaldi binary matrices (T, num_mel_bins): float32, or with ``compress`` Kaldi's
                    compressed speech-feature format ("CM", as ``copy-feats --compress=true``:
                    one byte per value, a quarter of the disk; kaldiio ``compression_method=2``)
  P.scp             ``utt /abs/path/P.ark:offset``
  P.utt2num_frames  ``utt T``
  P.skipped         ``utt reason`` for each utterance left out (bad audio), possibly empty
  P.yaml            the resolved FbankConfig used (dither included)
Everything is written under temp names (``.tmp``) and renamed at the end, P.scp last; a stale P.scp
is removed at the start. A killed job therefore leaves nothing that looks finished.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Dict

import numpy as np

from bccmt.audio import AudioError, read_audio
from bccmt.features import FbankConfig, compute_fbank, utt_seed
from bccmt.io.tables import read_kv

log = logging.getLogger(__name__)
COMPRESSION_METHOD = 2  # kaldiio/Kaldi kSpeechFeature: "CM", 1 byte per value, per-column quantiles
SUFFIXES = (".ark", ".utt2num_frames", ".skipped", ".yaml", ".scp")  # rename order: scp last


class FbankJobError(RuntimeError):
    """An utterance failed under on_error='fail' (message names it and the reason)."""


def _write_yaml(path: str, cfg: FbankConfig) -> None:
    import yaml

    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(cfg.to_dict(), f, sort_keys=False)


def dump_fbank(
    wav_scp: str,
    out_prefix: str,
    cfg: FbankConfig,
    on_error: str = "skip",
    progress_every: int = 500,
    compress: bool = False,
) -> Dict[str, float]:
    """Computes fbank for every utterance of ``wav_scp`` into ``out_prefix``.* (see module doc).

    on_error: 'skip' leaves bad utterances out (logged as warnings, listed in P.skipped);
      'fail' raises FbankJobError at the first one and leaves no outputs.
    Dither is seeded with ``utt_seed(utt)``: the same utterance gets the same features in any job.
    Returns {"done", "skipped", "audio_seconds", "elapsed_seconds", "rtf_inverse"}.
    """
    if on_error not in ("skip", "fail"):
        raise ValueError(f"on_error must be 'skip' or 'fail', got '{on_error}'")
    wavs = read_kv(wav_scp)
    prefix = os.path.abspath(out_prefix)
    Path(prefix).parent.mkdir(parents=True, exist_ok=True)
    final = {s: prefix + s for s in SUFFIXES}
    tmp = {s: p + ".tmp" for s, p in final.items()}
    for p in list(final.values()) + list(tmp.values()):
        if os.path.exists(p):
            os.unlink(p)
    log.info("%s: %d utterances -> %s.{ark,scp}; config %s", wav_scp, len(wavs), prefix,
             cfg.to_dict())
    t0 = time.time()
    try:
        out = _write_ark(wavs, cfg, tmp[".ark"], final[".ark"], on_error, progress_every, compress)
        for suffix, lines in ((".scp", out["scp"]), (".utt2num_frames", out["frames"]),
                              (".skipped", [f"{u} {r}\n" for u, r in out["skipped"]])):
            with open(tmp[suffix], "w", encoding="utf-8") as f:
                f.writelines(lines)
        _write_yaml(tmp[".yaml"], cfg)
        for suffix in SUFFIXES:
            os.replace(tmp[suffix], final[suffix])
    except BaseException:
        for p in tmp.values():
            if os.path.exists(p):
                os.unlink(p)
        raise
    return _summary(out, time.time() - t0, final[".skipped"])


def _write_ark(wavs: Dict[str, str], cfg: FbankConfig, ark_path: str, final_ark: str,
               on_error: str, progress_every: int, compress: bool = False) -> Dict:
    """Writes the features into ark_path; returns the scp and utt2num_frames lines (pointing at
    final_ark), the skipped (utt, reason) pairs and the seconds of audio done."""
    import kaldiio

    out: Dict = {"scp": [], "frames": [], "skipped": [], "audio_s": 0.0}
    t0 = time.time()
    with open(ark_path, "wb") as ark:
        for i, (utt, spec) in enumerate(wavs.items(), 1):
            try:
                wave = read_audio(spec, expected_rate=cfg.sample_rate, min_samples=cfg.frame_length)
                feats = compute_fbank(wave, cfg, seed=utt_seed(utt))
            except (AudioError, ValueError) as e:
                if on_error == "fail":
                    raise FbankJobError(f"utterance {utt} ({spec}): {e}") from None
                log.warning("skipping utterance %s (%s): %s", utt, spec, e)
                out["skipped"].append((utt, " ".join(str(e).split())))
                continue
            offset = ark.tell() + len(utt.encode("utf-8")) + 1
            kaldiio.save_ark(ark, {utt: feats.astype(np.float32, copy=False)},
                             compression_method=COMPRESSION_METHOD if compress else None)
            out["scp"].append(f"{utt} {final_ark}:{offset}\n")
            out["frames"].append(f"{utt} {feats.shape[0]}\n")
            out["audio_s"] += len(wave) / cfg.sample_rate
            if progress_every and i % progress_every == 0:
                el = time.time() - t0
                log.info("processed %d/%d utterances, %.1f s of audio in %.1f s (%.1fx real time)",
                         i, len(wavs), out["audio_s"], el, out["audio_s"] / max(el, 1e-9))
    return out


def _summary(out: Dict, elapsed: float, skipped_file: str) -> Dict[str, float]:
    audio_s, skipped = out["audio_s"], out["skipped"]
    stats = {"done": len(out["scp"]), "skipped": len(skipped), "audio_seconds": audio_s,
             "elapsed_seconds": elapsed, "rtf_inverse": audio_s / max(elapsed, 1e-9)}
    log.info("done: %d utterances written, %d skipped; %.1f s of audio in %.1f s (%.1fx real time)",
             stats["done"], stats["skipped"], audio_s, elapsed, stats["rtf_inverse"])
    if skipped:
        log.warning("skipped utterances (also in %s): %s", skipped_file,
                    "; ".join(f"{u}: {r}" for u, r in skipped[:20]) +
                    (f"; ... {len(skipped) - 20} more" if len(skipped) > 20 else ""))
    return stats
