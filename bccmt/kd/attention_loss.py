"""Self-attention-map distillation losses (pure functions on tensors).

Maps are softmax attention distributions of shape (B, heads, Tq, Tk): each query row sums to 1.

- KL (default): KL(teacher || student) = sum_k t_k (log t_k - log s_k) per head and query row,
  averaged over batch, heads and query rows, then over the distilled layer pairs. 0 iff equal.
- MSE (option): sum_k (t_k - s_k)^2 per row, with the same averaging (summing over keys keeps the
  magnitude independent of the key length, like KL).
Unequal head counts: ``average`` averages the heads of both maps (one distribution per query row);
``map`` averages groups of the larger model's heads down to the smaller count (must divide).
Embedding-level KD: MSE between the batch's cosine-similarity matrices of student and teacher
embeddings (works for any pair of embedding sizes, no extra parameters).
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F

EPS = 1e-8


def match_heads(s: torch.Tensor, t: torch.Tensor, mode: str = "average") -> Tuple[torch.Tensor, torch.Tensor]:
    """Brings student map s and teacher map t (B, H, Tq, Tk) to a common head count."""
    hs, ht = s.shape[1], t.shape[1]
    if hs == ht:
        return s, t
    if mode == "average":
        return s.mean(1, keepdim=True), t.mean(1, keepdim=True)
    if mode == "map":
        lo, hi = min(hs, ht), max(hs, ht)
        if hi % lo:
            raise ValueError(f"head_mode 'map' needs one head count to divide the other ({hs} vs {ht})")

        def group(x):
            b, h, q, k = x.shape
            return x.reshape(b, lo, h // lo, q, k).mean(2) if h != lo else x

        return group(s), group(t)
    raise ValueError(f"unknown head_mode '{mode}'; valid: average, map")


def map_divergence(s: torch.Tensor, t: torch.Tensor, loss: str = "kl") -> torch.Tensor:
    """Divergence between same-shape attention maps (B, H, Tq, Tk), averaged over rows -> scalar."""
    s, t = s.float(), t.float()
    if loss == "kl":
        per_row = (torch.special.xlogy(t, t) - t * torch.log(s.clamp_min(EPS))).sum(-1)
    elif loss == "mse":
        per_row = (t - s).pow(2).sum(-1)
    else:
        raise ValueError(f"unknown attention KD loss '{loss}'; valid: kl, mse")
    return per_row.mean()


def attention_kd_loss(student_maps: Sequence[torch.Tensor], teacher_maps: Sequence[torch.Tensor],
                      pairs: Sequence[Tuple[int, int]], loss: str = "kl",
                      head_mode: str = "average") -> Tuple[torch.Tensor, List[torch.Tensor]]:
    """Mean over layer pairs (student index, teacher index) -> (loss, per-pair losses)."""
    per_pair = []
    for si, ti in pairs:
        s, t = student_maps[si], teacher_maps[ti]
        if s.shape[0] != t.shape[0] or s.shape[2:] != t.shape[2:]:
            raise ValueError(f"attention KD: student map {si} {tuple(s.shape)} and teacher map {ti} "
                             f"{tuple(t.shape)} differ in batch or (Tq, Tk)")
        s, t = match_heads(s, t, head_mode)
        per_pair.append(map_divergence(s, t.detach(), loss))
    return torch.stack(per_pair).mean(), per_pair


def embedding_kd_loss(student_emb: torch.Tensor, teacher_emb: torch.Tensor) -> torch.Tensor:
    """MSE between cosine-similarity matrices (B, B) of the student and teacher embeddings."""
    s = F.normalize(student_emb.float(), dim=-1)
    t = F.normalize(teacher_emb.detach().float(), dim=-1)
    return F.mse_loss(s @ s.t(), t @ t.t())
