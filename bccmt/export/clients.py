"""Embeddings of an exported model computed by another toolkit: sherpa-onnx's speaker extractor.

sherpa-onnx (tested: 2.0.1, the test extra of pyproject.toml) reads ``framework``,
``output_dim``, ``sample_rate``, ``normalize_samples`` and ``language`` from the ONNX metadata
(bccmt.export.metadata.onnx_props), computes its own Kaldi fbank of the whole input (80 bins, 25/10 ms povey frames, snip_edges false, 20-7600 Hz,
dither 0, int16 scale: the recipe's convention, bccmt.features.FbankConfig) and feeds it to the
graph as (1, T, 80); everything after the fbank is inside our graph. Stage 7 embeds the backend and
evaluation sets this way (``python -m bccmt.bin.sherpa_embed``) and scores them like stage 5.

Audio is read with bccmt.audio.decode_audio (paths and ``cmd |`` pipes, as in wav.scp) and handed
to sherpa-onnx at the file's own sample rate: sherpa-onnx resamples other rates itself. Inputs
sherpa-onnx cannot embed (no samples, several channels, fewer samples than give one fbank frame)
raise ClientError naming the utterance. sherpa_onnx is imported only when used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator, Tuple

import numpy as np

from bccmt.audio import AudioError, decode_audio

SHERPA_VERSION_TESTED = "2.0.1"


class ClientError(RuntimeError):
    """A model or an input another toolkit cannot use; the message names the file or utterance."""


def onnx_model_file(model) -> Path:
    """The fp32 ONNX file of ``model``: an .onnx path as it is, or an export dir's
    metadata.json ``files.onnx`` (never the int8 file, whatever default_onnx says)."""
    path = Path(model)
    if path.suffix == ".onnx":
        if not path.is_file():
            raise ClientError(f"{path}: no such file")
        return path
    from bccmt.runtime.model import METADATA_FILE, ModelDirError, read_metadata

    try:
        name = read_metadata(path)["files"].get("onnx")
    except ModelDirError as e:
        raise ClientError(str(e)) from None
    if not name or not (path / name).is_file():
        raise ClientError(f"{path}/{METADATA_FILE}: no fp32 ONNX file (files.onnx: {name})")
    return path / name


def sherpa_extractor(onnx_path, threads: int = 1):
    """A sherpa_onnx.SpeakerEmbeddingExtractor of ``onnx_path`` on the CPU."""
    try:
        import sherpa_onnx
    except ImportError:
        raise ClientError(f"sherpa-onnx is not installed: pip install "
                          f"sherpa-onnx=={SHERPA_VERSION_TESTED} (the version tested), or "
                          "bash utils/setup_env.sh") from None
    path = Path(onnx_path)
    if not path.is_file():
        raise ClientError(f"{path}: no such file")
    cfg = sherpa_onnx.SpeakerEmbeddingExtractorConfig(model=str(path), num_threads=threads,
                                                      provider="cpu")
    if not cfg.validate():
        raise ClientError(f"{path}: sherpa-onnx rejects the extractor config")
    return sherpa_onnx.SpeakerEmbeddingExtractor(cfg)


def read_wave(spec: str, name: str) -> Tuple[np.ndarray, int]:
    """One wav.scp value -> ((N,) float32 mono in [-1, 1], the file's sample rate in Hz)."""
    try:
        data, rate = decode_audio(spec)
    except AudioError as e:
        raise ClientError(f"{name}: {e}") from None
    if data.shape[1] != 1:
        raise ClientError(f"{name}: {data.shape[1]} channels; sherpa-onnx takes mono audio")
    if data.shape[0] == 0:
        raise ClientError(f"{name}: no samples (empty audio)")
    return np.ascontiguousarray(data[:, 0], dtype=np.float32), int(rate)


def sherpa_embed_wave(extractor, wave: np.ndarray, rate: int, name: str) -> np.ndarray:
    """(N,) float32 samples in [-1, 1] at ``rate`` Hz -> (D,) float32 sherpa-onnx embedding."""
    stream = extractor.create_stream()
    stream.accept_waveform(rate, wave)
    stream.input_finished()
    if not extractor.is_ready(stream):  # compute() would log and return an empty list
        raise ClientError(f"{name}: {len(wave)} samples at {rate} Hz give sherpa-onnx no fbank "
                          "frame (too short)")
    emb = np.asarray(extractor.compute(stream), dtype=np.float32)
    if emb.shape != (extractor.dim,) or not np.all(np.isfinite(emb)):
        raise ClientError(f"{name}: sherpa-onnx returned an embedding of shape {emb.shape} "
                          f"(expected ({extractor.dim},), finite)")
    return emb


def sherpa_embeddings(onnx_path, items: Iterable[Tuple[str, str]], threads: int = 1
                      ) -> Iterator[Tuple[str, np.ndarray]]:
    """(key, wav path or wav.scp value) -> (key, (D,) float32 embedding) by sherpa-onnx, in order.

    Errors (ClientError) name the key and, when it differs, the file."""
    extractor = sherpa_extractor(onnx_path, threads)
    for key, spec in items:
        name = key if key == spec else f"{key} ({spec})"
        wave, rate = read_wave(spec, name)
        yield key, sherpa_embed_wave(extractor, wave, rate, name)
