"""Convolutional building blocks of BC-CMT (broadcasted residual learning, BC-ResNet style).

All tensors are (B, C, F, T): channels, frequency bins, frames (the network keeps them in
channels_last memory format; see bccmt.models.layout).
- SubSpectralNorm: BatchNorm applied separately to S frequency sub-bands.
- BCLPU: local perception unit, x + SSN(freqDW(x)) + broadcast(BN(timeDW(mean_F(.)))).
- BCIRFFN: inverted-residual FFN with a frequency branch and a broadcast temporal branch.
- Stem / Transition: frequency downsampling (stride 2) and an optional time stride.
"""

from __future__ import annotations

import torch
from torch import nn

from bccmt.models.layout import GELU, add_freq_broadcast, freq_mean
from bccmt.models.subband_norm import sub_band_batch_norm


class SubSpectralNorm(nn.Module):
    """BatchNorm with separate statistics and affine parameters per frequency sub-band.

    Uses ``sub_bands`` bands when freq_bins is divisible by it, otherwise plain BatchNorm2d.
    """

    def __init__(self, channels: int, freq_bins: int, sub_bands: int = 5):
        super().__init__()
        self.sub_bands = sub_bands if sub_bands > 1 and freq_bins % sub_bands == 0 else 1
        self.bn = nn.BatchNorm2d(channels * self.sub_bands)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.sub_bands == 1:
            return self.bn(x)
        return sub_band_batch_norm(x, self.bn, self.sub_bands)


class BroadcastTemporal(nn.Module):
    """mean over frequency -> depthwise time conv (kernel 3) -> BN; returns (B, C, T), which the
    caller broadcasts over frequency (add_freq_broadcast)."""

    def __init__(self, channels: int, dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation,
                              groups=channels, bias=False)
        self.bn = nn.BatchNorm1d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(freq_mean(x)))


class FreqDepthwise(nn.Module):
    """Frequency-only depthwise conv (kernel 3x1) followed by SubSpectralNorm."""

    def __init__(self, channels: int, freq_bins: int, sub_bands: int = 5):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, (3, 1), padding=(1, 0), groups=channels,
                              bias=False)
        self.ssn = SubSpectralNorm(channels, freq_bins, sub_bands)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ssn(self.conv(x))


class BCLPU(nn.Module):
    """Broadcasted local perception unit.

    y2 = SSN(freqDW(x)); returns x + y2 + broadcast(BN(timeDW(mean_F(y2))))."""

    def __init__(self, channels: int, freq_bins: int, sub_bands: int = 5):
        super().__init__()
        self.freq = FreqDepthwise(channels, freq_bins, sub_bands)
        self.temporal = BroadcastTemporal(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y2 = self.freq(x)
        return add_freq_broadcast(x + y2, self.temporal(y2))


class BCIRFFN(nn.Module):
    """Broadcasted inverted-residual FFN: 1x1 expand (ratio R) + BN + GELU, frequency branch and
    broadcast temporal branch added to the expansion, GELU, 1x1 project + BN, outer residual."""

    def __init__(self, channels: int, freq_bins: int, ratio: float, sub_bands: int = 5):
        super().__init__()
        hidden = int(round(channels * ratio))
        self.expand = nn.Sequential(nn.Conv2d(channels, hidden, 1, bias=False),
                                    nn.BatchNorm2d(hidden), GELU())
        self.freq = FreqDepthwise(hidden, freq_bins, sub_bands)
        self.temporal = BroadcastTemporal(hidden)
        self.act = GELU()
        self.project = nn.Sequential(nn.Conv2d(hidden, channels, 1, bias=False),
                                     nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.expand(x)
        h2 = self.freq(h)
        h = self.act(add_freq_broadcast(h + h2, self.temporal(h2)))
        return x + self.project(h)


class Stem(nn.Module):
    """3x3 conv, frequency stride 2 (and time stride ``time_stride``), BN, ReLU: 1 -> C channels."""

    def __init__(self, channels: int, time_stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(1, channels, 3, stride=(2, time_stride), padding=1, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Transition(nn.Module):
    """Between stages: 1x1 conv (c_in -> c_out) + BN + GELU, then a depthwise conv with frequency
    stride 2 (kernel 3 in frequency; kernel 3 in time when time_stride > 1) + BN.
    T_out = ceil(T / time_stride), F_out = ceil(F / 2)."""

    def __init__(self, c_in: int, c_out: int, time_stride: int = 1):
        super().__init__()
        kt = 3 if time_stride > 1 else 1
        self.pointwise = nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False),
                                       nn.BatchNorm2d(c_out), GELU())
        self.down = nn.Sequential(
            nn.Conv2d(c_out, c_out, (3, kt), stride=(2, time_stride), padding=(1, kt // 2),
                      groups=c_out, bias=False),
            nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.pointwise(x))
