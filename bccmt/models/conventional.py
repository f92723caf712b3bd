"""The conventional (Interspeech 2022 style) BC-CMT attention: 2-D self-attention over F x T tokens.

Every (frequency bin, frame) position of the (B, C, F, T) map is a token (index f * T + t).
Keys/values come from the map shortened in both axes by a depthwise conv (groups = C, kernel =
stride = r), as in CMT. The position bias is separable: a clipped relative-distance table per head
for time plus one for frequency. The softmax map is (B, heads, F*T, ceil(F/r)*ceil(T/r)): it grows
with F x T, which is what the revised temporal attention removes. Used by the *_2dsa models.
"""

from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn

from bccmt.models.attention import ReducedKVAttention, RelativePositionBias, attend


class FreqTimeMHSA(ReducedKVAttention):
    """Pre-norm 2-D MHSA with depthwise K/V reduction; x (B, C, F, T) -> x + attn(x)."""

    def __init__(self, dim: int, heads: int, reduction: int, freq_bins: int,
                 max_distance: int = 64):
        super().__init__(dim, heads, reduction,
                         lambda: nn.Conv2d(dim, dim, reduction, stride=reduction, groups=dim))
        self.time_bias = RelativePositionBias(heads, max_distance)
        self.freq_bias = RelativePositionBias(heads, max(freq_bins - 1, 1))

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        b, c, f, t = x.shape
        r = self.reduction
        z = self.norm(x.flatten(2).transpose(1, 2))                     # (B, F*T, C)
        if r > 1:
            # zero pad of r - 1 in both axes: the strided conv drops the surplus (the same keys as
            # a pad to the next multiple of r), and a constant pad traces for any length
            z2 = F.pad(z.transpose(1, 2).reshape(b, c, f, t), (0, r - 1, 0, r - 1))
            red = self.reduce(z2)                                       # (B, C, Fk, Tk)
            fk, tk = red.shape[2], red.shape[3]
            kv_in = self.reduce_norm(red.flatten(2).transpose(1, 2))
        else:
            fk, tk, kv_in = f, t, z
        h, d = self.heads, c // self.heads
        n, nk = f * t, fk * tk
        q = self.q(z).reshape(b, n, h, d).transpose(1, 2)
        k, v = self.kv(kv_in).reshape(b, nk, 2, h, d).permute(2, 0, 3, 1, 4)
        bias = (self.freq_bias(f, fk, r)[:, :, None, :, None]
                + self.time_bias(t, tk, r)[:, None, :, None, :]).reshape(h, n, nk)
        out, attn = attend(q, k, v, bias)
        out = self.proj(out.transpose(1, 2).reshape(b, n, c))           # (B, F*T, C)
        return x + out.transpose(1, 2).reshape(b, c, f, t), attn
