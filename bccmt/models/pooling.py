"""Frequency-statistics-dependent attentive statistics pooling (Interspeech 2022 BC-CMT idea).

x (B, C, F, T) -> per (channel, frame) softmax weights over frequency (1x1 conv) -> weighted mean
and std over frequency, h (B, 2C, T) -> attentive statistics pooling over time (weighted mean and
std, 4C) -> BN -> linear -> BN -> embedding (B, E).
"""

from __future__ import annotations

import torch
from torch import nn

EPS = 1e-5


def weighted_stats(x: torch.Tensor, w: torch.Tensor, dim: int):
    """Mean and std of x along dim under weights w (summing to 1 along dim)."""
    mean = (w * x).sum(dim=dim)
    var = (w * x * x).sum(dim=dim) - mean * mean
    return mean, var.clamp(min=EPS).sqrt()


class FreqStatsASP(nn.Module):
    """Frequency statistics, attentive statistics pooling over time, embedding layer."""

    def __init__(self, channels: int, embedding_dim: int, bottleneck: int = 128):
        super().__init__()
        self.freq_att = nn.Conv2d(channels, channels, 1)
        self.time_att = nn.Sequential(nn.Conv1d(2 * channels, bottleneck, 1), nn.Tanh(),
                                      nn.Conv1d(bottleneck, 2 * channels, 1))
        self.bn_stats = nn.BatchNorm1d(4 * channels)
        self.fc = nn.Linear(4 * channels, embedding_dim)
        self.bn_emb = nn.BatchNorm1d(embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        wf = self.freq_att(x).softmax(dim=2)
        mu_f, sd_f = weighted_stats(x, wf, dim=2)                        # (B, C, T) each
        h = torch.cat([mu_f, sd_f], dim=1)                               # (B, 2C, T)
        wt = self.time_att(h).softmax(dim=2)
        mu_t, sd_t = weighted_stats(h, wt, dim=2)                        # (B, 2C) each
        stats = self.bn_stats(torch.cat([mu_t, sd_t], dim=1))
        return self.bn_emb(self.fc(stats))
