"""How one utterance's fbank becomes model inputs at inference time: the one definition.

Stage-4 extraction (bccmt.embed, PyTorch), the exported graphs (bccmt.export) and the ``bccmt``
command (bccmt.runtime, onnxruntime) all cut utterances with these functions, so an exported model
scores like the recipe did. This module imports neither torch nor onnxruntime.

- ``chunk_bounds``: utterances longer than ``max_chunk_frames`` are cut into the fewest contiguous
  near-equal chunks; the chunk embeddings are averaged by the caller.
- ``quantise_length``: each input keeps its central ``T - T % q`` frames, so near-equal lengths
  share a batch.
- ``tile_frames``: inputs shorter than the model's ``min_frames`` are repeated cyclically up to
  that length (numpy here; a torch tensor inside an exported graph).
CMN (bccmt.features.apply_cmn) follows, per input.
"""

from __future__ import annotations

from typing import List, Tuple

import numpy as np


def chunk_bounds(num_frames: int, max_chunk_frames: int) -> List[Tuple[int, int]]:
    """[(start, end)] of the fewest near-equal contiguous chunks of at most max_chunk_frames."""
    n = max(1, -(-num_frames // max_chunk_frames))
    sizes = [len(a) for a in np.array_split(np.arange(num_frames), n)]
    edges = np.r_[0, np.cumsum(sizes)]
    return [(int(edges[i]), int(edges[i + 1])) for i in range(n)]


def quantise_length(x: np.ndarray, quantum: int, min_frames: int = 1) -> np.ndarray:
    """The central max(min_frames, T - T % quantum) frames of x (T, F); x itself if quantum <= 1."""
    t = x.shape[0]
    keep = max(min(min_frames, t), t - t % quantum) if quantum > 1 else t
    start = (t - keep) // 2
    return x[start:start + keep]


def tile_frames(feats, min_frames: int):
    """Frames repeated cyclically up to ``min_frames``: (..., T, F) -> (..., max(T, min_frames), F).

    Frame i of the output is frame i mod T of the input (np.tile, cut to length). numpy arrays are
    tiled with numpy. A torch tensor is tiled with tensor ops that also hold inside exported graphs:
    in eager mode and under torch.export the length is an int or a SymInt (torch.sym_max gives a
    symbolic max); under torch.jit.trace sizes are 0-dim tensors, so the max is a clamp.
    """
    t = feats.shape[-2]
    if isinstance(feats, np.ndarray):
        if t >= min_frames:
            return feats
        return np.take(feats, np.arange(min_frames) % t, axis=-2)
    import torch

    if isinstance(t, torch.Tensor):  # torch.jit.trace
        length, period = t.clamp(min=min_frames), t
    else:
        length = torch.sym_max(t, min_frames)
        period = torch.scalar_tensor(t, dtype=torch.long, device=feats.device)
    index = torch.arange(length, device=feats.device) % period
    return feats.index_select(feats.dim() - 2, index)


def model_inputs(feats: np.ndarray, min_frames: int, max_chunk_frames: int,
                 length_quantum: int) -> List[np.ndarray]:
    """The inputs one utterance's feats (T, F) is embedded from, before CMN: its chunks, each
    tiled to ``min_frames`` and cut to its central quantised length."""
    out = []
    for s, e in chunk_bounds(feats.shape[0], max_chunk_frames):
        x = tile_frames(feats[s:e], min_frames)
        out.append(quantise_length(x, length_quantum, min_frames))
    return out
