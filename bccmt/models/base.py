"""The interface every speaker-embedding model in bccmt.models implements.

``model(feats)`` with feats (B, T, n_mels) float log-Mel fbank (10 ms frames) returns embeddings
(B, embedding_dim); ``model(feats, return_attention=True)`` returns ``(embeddings, maps)`` where
maps is a list of softmax attention tensors (B, heads, T_query, T_key), one per attention block, in
network order. ``kd_layers`` indexes into that list (last block of every stage).

Export mode (``set_export_mode``): every submodule with an ``export_mode`` attribute switches to
code paths that torch.export and torch.jit.trace can follow for any batch size and length (no branch
on the input's size, no ``Unfold``). They compute the same function; bccmt.export turns it on on a
copy of the model, never during training.
"""

from __future__ import annotations

from typing import List

import torch
from torch import nn

# Shortest input (frames) the models accept. 0.5 s; the paper's shortest timing input is 1 s.
MIN_FRAMES = 50


class EmbeddingModel(nn.Module):
    """Base class: holds the public attributes and validates the input features."""

    def __init__(self, n_mels: int, embedding_dim: int, kd_layers: List[int],
                 min_frames: int = MIN_FRAMES):
        super().__init__()
        self.n_mels = n_mels
        self.embedding_dim = embedding_dim
        self.kd_layers = list(kd_layers)
        self.min_frames = min_frames

    def set_export_mode(self, on: bool = True) -> "EmbeddingModel":
        """Switches the export-friendly paths of this model and its submodules; returns self."""
        for module in self.modules():
            if hasattr(module, "export_mode"):
                module.export_mode = on
        return self

    def check_feats(self, feats: torch.Tensor) -> None:
        """Raises ValueError unless feats is (B, T, n_mels) with T >= min_frames."""
        if feats.dim() != 3 or feats.shape[-1] != self.n_mels:
            raise ValueError(f"{type(self).__name__}: expected feats (B, T, {self.n_mels}), "
                             f"got shape {tuple(feats.shape)}")
        if feats.shape[1] < self.min_frames:
            raise ValueError(f"{type(self).__name__}: input has {feats.shape[1]} frames, the model "
                             f"needs at least {self.min_frames} (pad or repeat short utterances)")
