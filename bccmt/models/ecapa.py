"""ECAPA-TDNN (Desplanques et al., Interspeech 2020), our implementation, the peer baseline.

C=512: conv1d(80->C, k5) -> 3 SE-Res2Blocks (k3, dilation 2/3/4, scale 8) -> multi-layer feature
aggregation (concat of the 3 block outputs, 1x1 conv to 1536) -> attentive statistics pooling with
global context -> BN -> linear -> BN -> embedding 192. About 6.2M parameters. It has no attention
maps: ``return_attention=True`` returns an empty list and ``kd_layers`` is empty.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import List

import torch
from torch import nn

from bccmt.models.base import MIN_FRAMES, EmbeddingModel
from bccmt.models.pooling import EPS, weighted_stats


@dataclass
class ECAPAConfig:
    """Hyper-parameters of ECAPA-TDNN."""
    channels: int = 512            # C of the SE-Res2 blocks
    embedding_dim: int = 192       # speaker embedding size
    mfa_channels: int = 1536       # multi-layer feature aggregation width
    scale: int = 8                 # Res2Net scale (channel splits)
    se_channels: int = 128         # squeeze-excitation bottleneck
    attention_channels: int = 128  # pooling attention bottleneck
    n_mels: int = 80               # input fbank bins
    min_frames: int = MIN_FRAMES   # shorter input raises ValueError

    @classmethod
    def field_names(cls) -> List[str]:
        return [f.name for f in fields(cls)]


def conv_relu_bn(c_in: int, c_out: int, kernel: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(c_in, c_out, kernel, dilation=dilation,
                                   padding=dilation * (kernel // 2)),
                         nn.ReLU(), nn.BatchNorm1d(c_out))


class SERes2Block(nn.Module):
    """1x1 conv -> Res2 dilated convs -> 1x1 conv -> squeeze-excitation, plus residual."""

    def __init__(self, channels: int, dilation: int, scale: int, se_channels: int):
        super().__init__()
        if channels % scale:
            raise ValueError(f"SERes2Block: channels {channels} not divisible by scale {scale}")
        width = channels // scale
        self.scale = scale
        self.conv_in = conv_relu_bn(channels, channels)
        self.res2 = nn.ModuleList(conv_relu_bn(width, width, 3, dilation) for _ in range(scale - 1))
        self.conv_out = conv_relu_bn(channels, channels)
        self.se = nn.Sequential(nn.Conv1d(channels, se_channels, 1), nn.ReLU(),
                                nn.Conv1d(se_channels, channels, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        chunks = torch.chunk(self.conv_in(x), self.scale, dim=1)
        outs, prev = [chunks[0]], None
        for i, conv in enumerate(self.res2):
            prev = conv(chunks[i + 1] if prev is None else chunks[i + 1] + prev)
            outs.append(prev)
        h = self.conv_out(torch.cat(outs, dim=1))
        return x + h * self.se(h.mean(dim=2, keepdim=True))


class ECAPATDNN(EmbeddingModel):
    """ECAPA-TDNN embedding extractor: feats (B, T, n_mels) -> (B, embedding_dim)."""

    def __init__(self, cfg: ECAPAConfig = None):
        cfg = cfg if isinstance(cfg, ECAPAConfig) else ECAPAConfig(**(cfg or {}))
        super().__init__(cfg.n_mels, cfg.embedding_dim, [], cfg.min_frames)
        self.cfg = cfg
        c = cfg.channels
        self.layer1 = conv_relu_bn(cfg.n_mels, c, 5)
        self.blocks = nn.ModuleList(SERes2Block(c, d, cfg.scale, cfg.se_channels)
                                    for d in (2, 3, 4))
        self.mfa = nn.Sequential(nn.Conv1d(3 * c, cfg.mfa_channels, 1), nn.ReLU())
        m = cfg.mfa_channels
        self.attention = nn.Sequential(nn.Conv1d(3 * m, cfg.attention_channels, 1), nn.ReLU(),
                                       nn.BatchNorm1d(cfg.attention_channels), nn.Tanh(),
                                       nn.Conv1d(cfg.attention_channels, m, 1))
        self.bn_stats = nn.BatchNorm1d(2 * m)
        self.fc = nn.Linear(2 * m, cfg.embedding_dim)
        self.bn_emb = nn.BatchNorm1d(cfg.embedding_dim)

    def forward(self, feats: torch.Tensor, return_attention: bool = False):
        self.check_feats(feats)
        x = self.layer1(feats.transpose(1, 2))
        outs = []
        for block in self.blocks:
            x = block(x)
            outs.append(x)
        h = self.mfa(torch.cat(outs, dim=1))                              # (B, 1536, T)
        t = h.shape[2]
        mean = h.mean(dim=2, keepdim=True)
        std = h.var(dim=2, keepdim=True, unbiased=False).clamp(min=EPS).sqrt()
        context = torch.cat([h, mean.expand(-1, -1, t), std.expand(-1, -1, t)], dim=1)
        w = self.attention(context).softmax(dim=2)
        mu, sd = weighted_stats(h, w, dim=2)
        emb = self.bn_emb(self.fc(self.bn_stats(torch.cat([mu, sd], dim=1))))
        return (emb, []) if return_attention else emb
