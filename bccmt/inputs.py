"""Everything between an utterance's raw fbank and its embedding: the one definition, in a module.

``EmbeddingGraph`` takes the raw log-Mel fbank of whole utterances, exactly as Kaldi's fbank (and
kaldi-native-fbank, and sherpa-onnx) computes it at extraction settings, (B, T, F) float32, and
returns their embeddings (B, D). In order:

1. silence floor: each bin is floored at ``floor`` (bccmt.features.silence_floor: digital silence
   lands inside the range the dithered training features cover); none for a model trained
   without dither;
2. tiling: an input shorter than the model's ``min_frames`` is repeated cyclically up to that
   length (``tile_frames``);
3. chunks and length cut (``chunk_index``): an input of T frames is split into the fewest
   n = ceil(T / max_chunk_frames) contiguous near-equal segments; every chunk is the central L
   frames of its segment, L = max(min_frames, S - S % length_quantum) for the shortest segment
   length S = T // n. So all chunks of an input have one length (they run as one batch), an input
   up to max_chunk_frames is one chunk, and lengths fall on a grid of ``length_quantum`` frames
   (at most q - 1 frames, 0.15 s at q = 16, are left out at the edges);
4. CMN per chunk (bccmt.features.apply_cmn, the function the training crops use);
5. the model, one forward over all chunks, and the plain mean of each input's chunk embeddings.

Stage 4 (bccmt.embed) runs this module in PyTorch; bccmt.export writes it, with the model in
export mode, to ONNX and TorchScript. A client that feeds the exported model the raw fbank of the
whole file (sherpa-onnx, the ``bccmt`` command, a few lines of onnxruntime) therefore gets the
recipe's embedding: nothing after the fbank happens outside the graph.

Stage 4 batches inputs of equal length: ``batchable_input`` applies steps 2-3 ahead for an input
that is one chunk. The graph's steps are idempotent on such an input (tiling and the cut leave a
cut input as it is), so the batched result is the one the whole-file input gives.

The index arithmetic is written with tensor ops on a 0-dim size, so it holds in eager mode and
under torch.jit.trace (where sizes are 0-dim tensors) and exports to ONNX with dynamic B and T.
"""

from __future__ import annotations

from typing import Optional, Union

import numpy as np
import torch
from torch import nn

from bccmt.features import apply_cmn

MAX_CHUNK_FRAMES = 3000  # 30 s: longer inputs are embedded in chunks, the embeddings averaged
LENGTH_QUANTUM = 16  # chunk lengths fall on this grid (stage 4 batches equal lengths)


def _size(x: torch.Tensor, dim: int) -> torch.Tensor:
    """x.shape[dim] as a 0-dim long tensor (under torch.jit.trace it already is one)."""
    t = x.shape[dim]
    return t if isinstance(t, torch.Tensor) else torch.tensor(int(t), dtype=torch.long)


def tile_frames(feats: torch.Tensor, min_frames: int) -> torch.Tensor:
    """Frames repeated cyclically up to ``min_frames``: (..., T, F) -> (..., max(T, min_frames), F).

    Frame i of the output is frame i mod T of the input (np.tile, cut to length)."""
    t = _size(feats, feats.dim() - 2)
    index = torch.arange(t.clamp(min=min_frames), device=feats.device) % t
    return feats.index_select(feats.dim() - 2, index)


def chunk_index(num_frames: Union[int, torch.Tensor], min_frames: int, max_chunk_frames: int,
                length_quantum: int) -> torch.Tensor:
    """(n, L) long tensor: row i holds the frame indices of chunk i of an input of ``num_frames``
    (>= min_frames) frames (see the module docstring, step 3)."""
    t = num_frames if isinstance(num_frames, torch.Tensor) else torch.tensor(int(num_frames))
    n = torch.div(t + (max_chunk_frames - 1), max_chunk_frames, rounding_mode="floor").clamp(min=1)
    shortest = torch.div(t, n, rounding_mode="floor")
    length = (shortest - shortest % max(1, length_quantum)).clamp(min=min_frames)
    i = torch.arange(n)
    begin = torch.div(i * t, n, rounding_mode="floor")
    end = torch.div((i + 1) * t, n, rounding_mode="floor")
    start = begin + torch.div(end - begin - length, 2, rounding_mode="floor")
    return start[:, None] + torch.arange(length)[None, :]


class EmbeddingGraph(nn.Module):
    """(B, T, F) raw fbank -> (B, D) embeddings: floor, tiling, chunks, CMN, model, chunk mean.

    model: an embedding model (bccmt.models), used as given (stage 4 passes it in eval mode; the
      exporter passes an export-mode copy). floor: (F,) per-bin log-Mel floor or None."""

    def __init__(self, model: nn.Module, floor: Optional[np.ndarray] = None,
                 max_chunk_frames: int = MAX_CHUNK_FRAMES, length_quantum: int = LENGTH_QUANTUM):
        super().__init__()
        self.model = model
        self.min_frames = int(model.min_frames)
        self.max_chunk_frames = int(max_chunk_frames)
        self.length_quantum = int(length_quantum)
        if self.max_chunk_frames < 2 * self.min_frames or self.length_quantum < 1:
            raise ValueError(f"max_chunk_frames must be >= 2 x min_frames ({2 * self.min_frames}) "
                             f"and length_quantum >= 1, got {max_chunk_frames}, {length_quantum}")
        if floor is not None:
            floor = torch.as_tensor(np.asarray(floor, dtype=np.float32))
            if floor.shape != (model.n_mels,):
                raise ValueError(f"silence floor of shape {tuple(floor.shape)}, the model takes "
                                 f"{model.n_mels} bins")
        self.register_buffer("floor", floor)

    def chunks(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, T, F) raw fbank -> (B * n, L, F): floored, tiled, cut into chunks, CMN'd."""
        if self.floor is not None:
            feats = torch.maximum(feats, self.floor)
        x = tile_frames(feats, self.min_frames)
        index = chunk_index(_size(x, 1), self.min_frames, self.max_chunk_frames,
                            self.length_quantum)
        return apply_cmn(x[:, index].flatten(0, 1))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        emb = self.model(self.chunks(feats))
        # the constant embedding_dim keeps the exported output's last size static
        return emb.reshape(feats.shape[0], -1, int(self.model.embedding_dim)).mean(dim=1)

    def batchable_input(self, feats: np.ndarray) -> np.ndarray:
        """(T, F) raw fbank -> what stage 4 stacks with inputs of the same length: the tiled,
        cut input when it is one chunk (the graph leaves it as it is), else feats unchanged."""
        x = tile_frames(torch.tensor(feats), self.min_frames)  # a copy: feats may be read-only
        index = chunk_index(x.shape[0], self.min_frames, self.max_chunk_frames,
                            self.length_quantum)
        return x[index[0]].numpy() if index.shape[0] == 1 else feats
