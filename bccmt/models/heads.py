"""Margin softmax heads for speaker classification training (not part of the embedding model).

forward(emb (B, E), labels (B,) long) -> logits (B, num_classes) with the margin applied to the
target class and everything multiplied by ``scale``; the caller computes F.cross_entropy.
``margin`` is a plain attribute, so a margin schedule can set it between steps.
- AAM (ArcFace): target logit s*cos(theta + m); past theta + m > pi it continues as
  s*(cos(theta) - m*sin(m)) so that the target logit stays monotonic in theta.
- AM (CosFace): target logit s*(cos(theta) - m).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class _CosineHead(nn.Module):
    def __init__(self, embedding_dim: int, num_classes: int, scale: float, margin: float):
        super().__init__()
        self.embedding_dim, self.num_classes = embedding_dim, num_classes
        self.scale, self.margin = float(scale), float(margin)
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_dim))
        nn.init.xavier_uniform_(self.weight)

    def cosine(self, emb: torch.Tensor) -> torch.Tensor:
        """(B, num_classes) cosine between embeddings and class centres."""
        return F.linear(F.normalize(emb, dim=1), F.normalize(self.weight, dim=1))

    @torch.no_grad()
    def accuracy(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Fraction of embeddings whose nearest class centre (cosine) is their label: the margin-free
        decision, so that a margin during training does not read as a loss of accuracy."""
        return (self.cosine(emb.detach().float()).argmax(-1) == labels).float().mean()

    def extra_repr(self) -> str:
        return (f"embedding_dim={self.embedding_dim}, num_classes={self.num_classes}, "
                f"scale={self.scale}, margin={self.margin}")


class AAMSoftmax(_CosineHead):
    """Additive angular margin softmax (ArcFace)."""

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = self.cosine(emb).clamp(-1.0 + 1e-7, 1.0 - 1e-7)
        m = self.margin
        sin = (1.0 - cos * cos).sqrt()
        phi = cos * math.cos(m) - sin * math.sin(m)
        phi = torch.where(cos > math.cos(math.pi - m), phi, cos - math.sin(math.pi - m) * m)
        target = F.one_hot(labels, self.num_classes).bool()
        return self.scale * torch.where(target, phi, cos)


class AMSoftmax(_CosineHead):
    """Additive margin softmax (CosFace)."""

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = self.cosine(emb)
        target = F.one_hot(labels, self.num_classes).to(cos.dtype)
        return self.scale * (cos - self.margin * target)


HEADS = {"aam": AAMSoftmax, "am": AMSoftmax}


def build_head(name: str, embedding_dim: int, num_classes: int, scale: float = 32.0,
               margin: float = 0.2) -> nn.Module:
    """Margin head by name ("aam" or "am"); an unknown name raises ValueError listing both."""
    if name not in HEADS:
        raise ValueError(f"unknown margin head {name!r}; valid heads: {', '.join(sorted(HEADS))}")
    return HEADS[name](embedding_dim, num_classes, scale, margin)
