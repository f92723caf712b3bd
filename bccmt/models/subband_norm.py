"""Sub-band batch normalisation (the maths of SubSpectralNorm) for channels_last tensors.

BatchNorm2d(C * S) applied to x.reshape(B, C * S, F // S, T) normalises every (channel c, band s)
pair (BN channel c * S + s) over (B, F // S, T). That reshape is a view only for NCHW tensors; for
channels_last tensors it copies and hands NCHW back, which slows every op after it. A
channels_last tensor is stored as (B, F, T, C) = (B, S, L, C) with L = (F // S) * T, so here the
statistics are sums over B and L of that view, done as batched products with a ones vector (the
CPU reduction kernels are ~10x slower on such outer dims). The output stays channels_last.
Forward and backward are the standard training-mode batch-norm formulas (biased variance to
normalise, unbiased for the running estimate); the variance is E[x^2] - E[x]^2 with float32
batched-product sums, which matches nn.BatchNorm2d to ~1e-6 relative while a band's mean stays
within ~100x its standard deviation (the error grows as (mean / std)^2 * 1e-7).
"""

from __future__ import annotations

import torch
from torch import nn


def _sum_bl(xp: torch.Tensor) -> torch.Tensor:
    """xp (B, S, L, C) contiguous -> sum over B and L, (S, C)."""
    b, s, l, c = xp.shape
    ones = xp.new_ones(1, 1, l).expand(b * s, 1, l)
    return torch.bmm(ones, xp.reshape(b * s, l, c)).view(b, s, c).sum(0)


def _bcast(v: torch.Tensor) -> torch.Tensor:
    """(S, C) -> (1, S, 1, C)."""
    return v[None, :, None, :]


class _SubBandBatchNorm(torch.autograd.Function):
    """Training-mode batch norm of xp (B, S, L, C) over dims (0, 2); weight/bias (S, C)."""

    @staticmethod
    def forward(ctx, xp, weight, bias, eps):
        n = xp.numel() // weight.numel()
        mean = _sum_bl(xp) / n
        var = (_sum_bl(xp * xp) / n - mean * mean).clamp_(min=0)
        invstd = torch.rsqrt(var + eps)
        scale = weight * invstd
        y = torch.addcmul(_bcast(bias - mean * scale), xp, _bcast(scale))
        ctx.save_for_backward(xp, weight, mean, invstd)
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var

    @staticmethod
    def backward(ctx, grad_y, _grad_mean, _grad_var):
        xp, weight, mean, invstd = ctx.saved_tensors
        g = grad_y.contiguous()
        n = xp.numel() // weight.numel()
        sum_g = _sum_bl(g)
        dot = _sum_bl(g * xp) - mean * sum_g                      # sum g * (x - mean)
        grad_x = None
        if ctx.needs_input_grad[0]:
            # dx = k * (g - sum_g / n - (x - mean) * invstd^2 * dot / n), k = weight * invstd
            k = weight * invstd
            b = -k * invstd * invstd * dot / n
            grad_x = torch.addcmul(_bcast(-k * sum_g / n - b * mean), g, _bcast(k))
            grad_x.addcmul_(xp, _bcast(b))
        grad_w = dot * invstd if ctx.needs_input_grad[1] else None
        grad_b = sum_g if ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b, None


def sub_band_batch_norm(x: torch.Tensor, bn: nn.BatchNorm2d, sub_bands: int) -> torch.Tensor:
    """bn(x.reshape(B, C * S, F // S, T)).reshape(B, C, F, T), bn having C * S channels (running
    statistics and num_batches_tracked updated alike); channels_last in -> channels_last out."""
    b, c, f, t = x.shape
    s = sub_bands
    if x.is_contiguous() or not x.is_contiguous(memory_format=torch.channels_last):
        return bn(x.reshape(b, c * s, f // s, t)).reshape(b, c, f, t)
    xp = x.permute(0, 2, 3, 1).reshape(b, s, (f // s) * t, c)   # a view of the storage
    weight = bn.weight.view(c, s).t() if bn.affine else x.new_ones(s, c)
    bias = bn.bias.view(c, s).t() if bn.affine else x.new_zeros(s, c)
    if bn.training or not bn.track_running_stats:
        y, mean, var = _SubBandBatchNorm.apply(xp, weight, bias, bn.eps)
        if bn.training and bn.track_running_stats:
            bn.num_batches_tracked.add_(1)
            m = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
            n = xp.numel() // (c * s)
            with torch.no_grad():
                bn.running_mean.mul_(1 - m).add_(mean.t().reshape(-1), alpha=m)
                bn.running_var.mul_(1 - m).add_(var.t().reshape(-1), alpha=m * n / max(n - 1, 1))
    else:
        scale = weight * torch.rsqrt(bn.running_var.view(c, s).t() + bn.eps)
        shift = bias - bn.running_mean.view(c, s).t() * scale
        y = torch.addcmul(_bcast(shift), xp, _bcast(scale))
    return y.view(b, f, t, c).permute(0, 3, 1, 2)
