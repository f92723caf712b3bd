"""Frequency reductions/broadcasts that keep channels_last tensors (and their gradients) fast.

The BC-CMT trunk runs in channels_last memory format, i.e. a (B, C, F, T) tensor is stored as
(B, F, T, C). On CPU, reducing over F in that layout with x.mean(dim=2) / sum is ~10x slower than a
batched product with a ones vector, and autograd's broadcast-add backward and mean backward hand
back gradients in other layouts; mixing layouts in one element-wise op is another ~5x slower. These
helpers compute the same values (up to float rounding) and keep every gradient channels_last.
Non-channels_last inputs take the plain PyTorch path.
"""

from __future__ import annotations

import torch


def is_channels_last(x: torch.Tensor) -> bool:
    """True for a 4-D tensor stored channels_last (and not also plain contiguous)."""
    return (x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
            and not x.is_contiguous())


def _freq_sum(x: torch.Tensor) -> torch.Tensor:
    """Channels_last x (B, C, F, T) -> sum over F, (B, C, T), one batched product."""
    b, c, f, t = x.shape
    xp = x.permute(0, 2, 3, 1).reshape(b, f, t * c)                 # view of the storage
    return torch.matmul(x.new_ones(1, f), xp).view(b, t, c).transpose(1, 2)


class _FreqMean(torch.autograd.Function):
    """Channels_last x (B, C, F, T) -> mean over F (B, C, T); gradient back channels_last."""

    @staticmethod
    def forward(ctx, x):
        ctx.shape = x.shape
        return _freq_sum(x) / x.shape[2]

    @staticmethod
    def backward(ctx, grad):
        b, c, f, t = ctx.shape
        return (grad / f).unsqueeze(2).expand(b, c, f, t).contiguous(
            memory_format=torch.channels_last)


def freq_mean(x: torch.Tensor) -> torch.Tensor:
    """x (B, C, F, T) -> mean over frequency, (B, C, T) (strides (T*C, 1, C) if channels_last)."""
    if not is_channels_last(x):
        return x.mean(dim=2)
    return _FreqMean.apply(x)


class GELU(torch.nn.GELU):
    """nn.GELU (same maths, no parameters); a channels_last input is processed through its
    plain-contiguous (B, F, T, C) view, where the CPU kernel is faster than on the NCHW-strided
    view of the same storage."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not is_channels_last(x):
            return super().forward(x)
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class _AddFreqBroadcast(torch.autograd.Function):
    """x (B, C, F, T) channels_last + t (B, C, T) broadcast over F; output channels_last."""

    @staticmethod
    def forward(ctx, x, t):
        out = torch.empty_like(x, memory_format=torch.channels_last)
        return torch.add(x, t.unsqueeze(2), out=out)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous(memory_format=torch.channels_last)
        grad_t = _freq_sum(grad) if ctx.needs_input_grad[1] else None
        return grad, grad_t


def add_freq_broadcast(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x (B, C, F, T) + t (B, C, T) broadcast over frequency: x + t.unsqueeze(2)."""
    if not is_channels_last(x):
        return x + t.unsqueeze(2)
    return _AddFreqBroadcast.apply(x, t)


class _ChannelsLastGrad(torch.autograd.Function):
    """Identity whose backward makes the incoming gradient channels_last."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad.contiguous(memory_format=torch.channels_last)


def channels_last_grad(x: torch.Tensor) -> torch.Tensor:
    """x unchanged; its gradient is converted to channels_last (use where the consumer's backward
    produces another layout, so that the trunk's backward ops never mix layouts)."""
    if not is_channels_last(x) or not torch.is_grad_enabled() or not x.requires_grad:
        return x
    return _ChannelsLastGrad.apply(x)
