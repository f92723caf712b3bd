"""Reading one wav.scp entry into a mono float32 waveform in [-1, 1], or a clear AudioError.

A wav.scp value is either a file path (.wav/.flac/... through soundfile; .m4a/.aac/.mp4 through
PyAV, VoxCeleb2's AAC) or a Kaldi pipe ``cmd |`` whose stdout is a wav file (run through bash with
pipefail). Policy on bad input (every case raises AudioError with the reason):
  missing file, empty file, unreadable/corrupt bytes, truncated wav (the RIFF data chunk declares
  more bytes than the file has; soundfile would silently return fewer samples), fewer samples than
  ``min_samples`` (default: one 25 ms frame), a pipe command exiting non-zero; and, for the
  recipe's ``read_audio``, a sample rate other than ``expected_rate`` (no silent resampling) or
  more than one channel (no silent downmix).
``read_audio_converted`` (the ``bccmt`` command's reader) instead averages the channels and
resamples to the wanted rate (scipy's polyphase filter), and logs a line when it does either.
This module imports neither torch nor onnxruntime.
"""

from __future__ import annotations

import io
import logging
import os
import struct
import subprocess
from math import gcd
from typing import BinaryIO, Optional, Tuple

import numpy as np

logger = logging.getLogger(__name__)

AV_EXTENSIONS = (".m4a", ".aac", ".mp4", ".m4v")
# Data-chunk sizes that streaming writers put in a header they cannot seek back to fix
# (ffmpeg: 0xFFFFFFFF, sox: 0x7FFFF000, some: 0): the length is "unknown", not truncated.
_STREAMING_SIZES = {0, 0xFFFFFFFF, 0x7FFFFFFF, 0x7FFFF000}


class AudioError(Exception):
    """An utterance that cannot be used; str(e) is the reason (the caller adds the utt id)."""


def _default_min_samples(rate: int) -> int:
    return int(0.025 * rate)  # one 25 ms analysis frame


def wav_data_chunk(f: BinaryIO) -> Optional[Tuple[int, int]]:
    """(offset of the PCM data, declared data bytes) from a RIFF/WAVE header, or None if not RIFF."""
    head = f.read(12)
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
        return None
    endian = "<" if head[:4] == b"RIFF" else ">"
    while True:
        ch = f.read(8)
        if len(ch) < 8:
            raise AudioError("truncated wav header: no 'data' chunk")
        cid, size = ch[:4], struct.unpack(endian + "I", ch[4:])[0]
        if cid == b"data":
            return f.tell(), size
        f.seek(size + (size & 1), os.SEEK_CUR)


def _check_not_truncated(f: BinaryIO, total_bytes: int) -> None:
    info = wav_data_chunk(f)
    f.seek(0)
    if info is None:
        return
    offset, declared = info
    available = total_bytes - offset
    if declared not in _STREAMING_SIZES and available < declared:
        raise AudioError(
            f"truncated wav: header declares {declared} data bytes, file has {max(available, 0)}"
        )


def _read_soundfile(f: BinaryIO, total_bytes: int) -> Tuple[np.ndarray, int]:
    import soundfile as sf

    _check_not_truncated(f, total_bytes)
    try:
        with sf.SoundFile(f) as snd:
            rate, frames = snd.samplerate, snd.frames
            data = snd.read(dtype="float32", always_2d=True)
    except sf.SoundFileError as e:
        raise AudioError(f"unreadable audio ({e})") from None
    if frames > 0 and len(data) < frames:
        raise AudioError(f"truncated audio: read {len(data)} of {frames} samples")
    return data, rate


def _read_av(path: str) -> Tuple[np.ndarray, int]:
    import av

    try:
        with av.open(path) as container:
            if not container.streams.audio:
                raise AudioError("no audio stream")
            stream = container.streams.audio[0]
            rate = stream.codec_context.sample_rate
            chunks = []
            resampler = None
            for frame in container.decode(stream):
                if frame.format.name != "fltp":  # planar float: to_ndarray() is (channels, n)
                    if resampler is None:
                        resampler = av.AudioResampler(format="fltp", layout=frame.layout.name,
                                                      rate=frame.sample_rate)
                    chunks.extend(fr.to_ndarray() for fr in resampler.resample(frame))
                else:
                    chunks.append(frame.to_ndarray())
            declared = None
            if stream.duration is not None and stream.time_base is not None:
                declared = int(round(float(stream.duration * stream.time_base) * rate))
    except av.error.FFmpegError as e:
        raise AudioError(f"unreadable audio ({e})") from None
    data = (np.concatenate(chunks, axis=1).T.astype(np.float32, copy=False) if chunks
            else np.zeros((0, 1), np.float32))
    if declared:
        # AAC decodes whole 1024-sample frames: drop the encoder's end padding, and call it
        # truncated when more than one frame of the declared length is missing.
        if len(data) + 1024 < declared:
            raise AudioError(f"truncated audio: decoded {len(data)} of {declared} samples")
        data = data[:declared]
    return data, rate


def _run_pipe(cmd: str) -> bytes:
    proc = subprocess.run(
        ["bash", "-c", "set -o pipefail; " + cmd],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        tail = f": {err[-1]}" if err else ""
        raise AudioError(f"command failed with exit status {proc.returncode}: '{cmd}'{tail}")
    return proc.stdout


def decode_audio(spec: str) -> Tuple[np.ndarray, int]:
    """Decodes one wav.scp value as it is: (data (N, channels) float32 in [-1, 1], rate in Hz).

    Raises AudioError for a missing, empty, unreadable or truncated input or a failing pipe."""
    spec = spec.strip()
    if not spec:
        raise AudioError("empty wav.scp entry")
    if spec.endswith("|"):
        data = _run_pipe(spec[:-1].strip())
        if not data:
            raise AudioError(f"command wrote nothing: '{spec[:-1].strip()}'")
        return _read_soundfile(io.BytesIO(data), len(data))
    if not os.path.exists(spec):
        raise AudioError(f"no such file: {spec}")
    size = os.path.getsize(spec)
    if size == 0:
        raise AudioError(f"empty file (0 bytes): {spec}")
    if spec.lower().endswith(AV_EXTENSIONS):
        return _read_av(spec)
    with open(spec, "rb") as f:
        return _read_soundfile(f, size)


def _check_length(wave: np.ndarray, rate: int, min_samples: Optional[int]) -> np.ndarray:
    min_samples = _default_min_samples(rate) if min_samples is None else min_samples
    if len(wave) == 0:
        raise AudioError("no samples (empty audio)")
    if len(wave) < min_samples:
        raise AudioError(
            f"too short: {len(wave)} samples ({len(wave) / rate:.3f} s) < {min_samples}")
    return wave


def read_audio(
    spec: str, expected_rate: int = 16000, min_samples: Optional[int] = None
) -> np.ndarray:
    """Reads one wav.scp value, strictly (the recipe's reader).

    spec: a path (.wav/.flac via soundfile, .m4a via PyAV) or a pipe ``cmd |`` writing a wav file.
    Returns wave: (N,) float32 mono in [-1, 1] at ``expected_rate`` Hz.
    min_samples: shortest acceptable length (default one 25 ms frame = 400 samples at 16 kHz).
    Raises AudioError(reason) for every unusable input (see the module docstring).
    """
    data, rate = decode_audio(spec)
    if rate != expected_rate:
        raise AudioError(f"sample rate {rate} Hz, expected {expected_rate} Hz")
    if data.shape[1] != 1:
        raise AudioError(f"{data.shape[1]} channels; mono required (no silent downmix)")
    return _check_length(data[:, 0], expected_rate, min_samples)


def read_audio_converted(spec: str, rate: int = 16000, min_samples: Optional[int] = None,
                         name: Optional[str] = None) -> np.ndarray:
    """Reads one wav.scp value leniently: (N,) float32 mono at ``rate`` Hz.

    Several channels are averaged and another sample rate is resampled (scipy.signal.resample_poly,
    the ratio reduced by its gcd), each with an INFO log line naming the input (``name``, default
    ``spec``). Every other bad input raises AudioError as in read_audio."""
    data, have = decode_audio(spec)
    name = name or spec
    wave = data[:, 0]
    if data.shape[1] > 1:
        logger.info("%s: %d channels, averaged to mono", name, data.shape[1])
        wave = data.mean(axis=1, dtype=np.float64).astype(np.float32)
    if have != rate and len(wave):
        from scipy.signal import resample_poly

        g = gcd(have, rate)
        logger.info("%s: resampled from %d Hz to %d Hz", name, have, rate)
        wave = resample_poly(wave, rate // g, have // g).astype(np.float32)
    return _check_length(wave, rate, min_samples)


def audio_duration(path: str) -> float:
    """Duration in seconds from the file header only (no decoding): soundfile for wav/flac,
    the container's stream duration for m4a. Raises AudioError if the header cannot be read."""
    if not os.path.exists(path):
        raise AudioError(f"no such file: {path}")
    if path.lower().endswith(AV_EXTENSIONS):
        import av

        try:
            with av.open(path) as container:
                if not container.streams.audio:
                    raise AudioError("no audio stream")
                st = container.streams.audio[0]
                if st.duration is not None and st.time_base is not None:
                    return float(st.duration * st.time_base)
                if container.duration is not None:
                    return container.duration / 1e6  # av.time_base: microseconds
        except av.error.FFmpegError as e:
            raise AudioError(f"unreadable audio ({e})") from None
        raise AudioError("container declares no duration")
    import soundfile as sf

    try:
        info = sf.info(path)
    except sf.SoundFileError as e:
        raise AudioError(f"unreadable audio ({e})") from None
    return info.frames / info.samplerate
