"""Temporal (1-D) multi-head self-attention of the revised BC-CMT block.

Queries come from the frequency-averaged, layer-normalised map (B, T, C). Keys and values come from
the same sequence shortened in time by a grouped conv (kernel = stride = r, groups = heads by
default: fewer groups than CMT's depthwise reduction). When T is not a multiple of r, the last,
partial window is filled by repeating its last real frame (edge padding), so every key and value is
computed from real frames only; zero padding would feed the conv frames that do not exist, and the
last key would change with T mod r. The pad is always r - 1 frames (the conv's floor drops the
surplus, so the keys are those of a pad of (-T) mod r): a constant that torch.jit.trace can record
for any T. A clipped relative-distance table per head
gives a position bias for any length. The attention output (B, C, T) is broadcast over frequency and
added to the 2-D input (broadcasted residual learning). The softmax map (B, heads, T, ceil(T/r)) is
returned for attention-map knowledge distillation; its shape depends on neither F nor C.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from bccmt.models.layout import add_freq_broadcast, freq_mean


class RelativePositionBias(nn.Module):
    """Learned bias per head and clipped relative distance, usable for any sequence length.

    The distance between query frame i and key window j (covering frames [j*r, (j+1)*r)) is
    i - (j*r + r//2), in frames of the block's own time resolution, clipped to +/- max_distance.
    ``export_mode`` (set through EmbeddingModel.set_export_mode) builds the bias with ``gather``:
    the same values, from ops that ONNX exporters can follow for any length (``Unfold`` with a
    data-dependent size cannot be exported).
    """

    def __init__(self, heads: int, max_distance: int = 64):
        super().__init__()
        self.export_mode = False
        self.max_distance = max_distance
        self.table = nn.Parameter(torch.zeros(heads, 2 * max_distance + 1))
        nn.init.trunc_normal_(self.table, std=0.02)

    def forward(self, n_query: int, n_key: int, reduction: int) -> torch.Tensor:
        """(heads, n_query, n_key) bias, bias[h, i, j] = table[h, clip(i - j*r - r//2)].

        Built from one 1-D lookup u[m] = table[clip(m - (n_key-1)*r - r//2)] of length
        n_query + (n_key-1)*r, whose windows u[(n_key-1-j)*r : ... + n_query] are the columns
        (cheaper than gathering n_query * n_key indices)."""
        if self.export_mode:
            return self.gather(n_query, n_key, reduction)
        r = reduction
        m = torch.arange(n_query + (n_key - 1) * r, device=self.table.device)
        dist = (m - (n_key - 1) * r - r // 2).clamp(-self.max_distance, self.max_distance)
        u = self.table[:, dist + self.max_distance]                     # (heads, L)
        return u.unfold(1, n_query, r).flip(1).transpose(1, 2)          # (heads, Tq, Tk)

    def gather(self, n_query: int, n_key: int, reduction: int) -> torch.Tensor:
        """The same bias by a direct gather of n_query * n_key entries (export mode; the tests'
        reference). The sizes may be ints, SymInts (torch.export) or 0-dim tensors (tracing)."""
        q = torch.arange(n_query, device=self.table.device)
        centre = torch.arange(n_key, device=self.table.device) * reduction + reduction // 2
        dist = (q[:, None] - centre[None, :]).clamp(-self.max_distance, self.max_distance)
        # one 1-D index_select (ONNX Gather) of the flattened (Tq, Tk) indices: several times
        # faster in onnxruntime than the GatherND of a 2-D advanced index
        flat = self.table.index_select(1, (dist + self.max_distance).flatten())
        return flat.unflatten(1, dist.shape)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor
           ) -> Tuple[torch.Tensor, torch.Tensor]:
    """q (B, h, Nq, d), k/v (B, h, Nk, d), bias broadcastable to (B, h, Nq, Nk).
    Returns (output (B, h, Nq, d), softmax map (B, h, Nq, Nk))."""
    scores = torch.matmul(q, k.transpose(-2, -1)) * (q.shape[-1] ** -0.5) + bias
    attn = scores.softmax(dim=-1)
    return torch.matmul(attn, v), attn


class ReducedKVAttention(nn.Module):
    """What both MHSA variants share: pre-norm, Q, a strided K/V reduction (``make_reduce()``,
    built only for reduction > 1) with its LayerNorm, the KV and output projections. Subclasses
    add their position bias and forward; the creation order fixes the parameter initialisation."""

    def __init__(self, dim: int, heads: int, reduction: int, make_reduce):
        super().__init__()
        if dim % heads:
            raise ValueError(f"{type(self).__name__}: dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.reduction = reduction
        self.norm = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        if reduction > 1:
            self.reduce = make_reduce()
            self.reduce_norm = nn.LayerNorm(dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)


class TemporalMHSA(ReducedKVAttention):
    """Pre-norm temporal MHSA, grouped-conv K/V reduction; x (B,C,F,T) -> x + broadcast(attn)."""

    def __init__(self, dim: int, heads: int, reduction: int, kv_groups: Optional[int] = None,
                 max_distance: int = 64):
        groups = heads if kv_groups is None else kv_groups

        def make_reduce():
            if dim % groups:
                raise ValueError(f"TemporalMHSA: dim {dim} is not divisible by kv_groups {groups}")
            return nn.Conv1d(dim, dim, reduction, stride=reduction, groups=groups)

        super().__init__(dim, heads, reduction, make_reduce)
        self.rel_bias = RelativePositionBias(heads, max_distance)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        t = x.shape[3]
        z = self.norm(freq_mean(x).transpose(1, 2))                     # (B, T, C)
        if self.reduction > 1:
            zt = F.pad(z.transpose(1, 2), (0, self.reduction - 1), mode="replicate")
            kv_in = self.reduce_norm(self.reduce(zt).transpose(1, 2))   # (B, ceil(T/r), C)
        else:
            kv_in = z
        h = self.heads
        d = self.q.out_features // h
        # unflatten/flatten of the channel dim only: no size of B or T in the view arguments, so
        # torch.export's symbolic shapes stay simple (a ~1.5x faster export than reshape(b, t, ..))
        q = self.q(z).unflatten(-1, (h, d)).transpose(1, 2)
        k, v = self.kv(kv_in).unflatten(-1, (2, h, d)).permute(2, 0, 3, 1, 4)
        out, attn = attend(q, k, v, self.rel_bias(t, kv_in.shape[1], self.reduction))
        out = self.proj(out.transpose(1, 2).flatten(2))                 # (B, T, C)
        return add_freq_broadcast(x, out.transpose(1, 2)), attn
