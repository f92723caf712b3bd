"""BC-CMT speaker embedding network (revised 2024 block, or the conventional 2-D attention variant).

Input feats (B, T, 80) log-Mel -> (B, 1, 80, T) -> Stem (freq stride 2: F=40, and the stage-1 time
stride) -> 4 stages of BC-CMT blocks (BC-LPU -> MHSA -> BC-IRFFN); before stages 2-4 a Transition
halves F (40, 20, 10, 5) and applies that stage's time stride -> frequency-statistics ASP ->
embedding (B, E).

Attention maps and the Tiny <-> Base KD layer mapping
-----------------------------------------------------
Every block returns one softmax map; ``maps`` lists them in network order. ``kd_layers`` holds the
index of the last block of each stage: Tiny/Small (blocks 2,2,4,2) -> [1, 3, 7, 9], Base (blocks
2,2,6,2) -> [1, 3, 9, 11]. Heads (1,2,4,8), K/V reduction r (8,4,2,1) and time strides are shared by
all sizes, so for an input of T frames the distilled maps have identical shapes in every size:
stage s has T_s = ceil(T / prod(time_strides[:s+1])) frames and map
(B, heads_s, T_s, ceil(T_s / r_s)).
With the default time strides (2,2,2,1) and T=200: (B,1,100,13), (B,2,50,13), (B,4,25,13),
(B,8,25,25). For the 2-D variant the maps are (B, heads, F_s*T_s, ceil(F_s/r)*ceil(T_s/r)) with
F_s = 40, 20, 10, 5 - also identical across sizes.

Time strides (our choice, measured): the stem and the transitions into stages 2 and 3 halve the
frame rate (20, 40, 80 ms); stage 4 keeps it, so the last stages see T/8 frames, the time reduction
of a ResNet34 speaker model (which reaches it later, at a much higher cost). The early stages (F=40,
20) hold most of the activation volume, so striding there bounds the cost of long inputs. Measured
on the shared 2-core CPU (1 thread, 10 s input, same run, quick protocol) Tiny took 0.33x the time
of ECAPA-TDNN C=512 with (2,2,2,1), 0.52x with (2,1,2,2), 0.62x with (1,2,2,2) and about 2.9x
without strides (1,1,1,1); see bccmt.bin.benchmark_models. Every size uses the same strides, so the
KD maps keep matching; an override must be given to the teacher and the student alike.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import List, Optional, Tuple, Union

import torch
from torch import nn

from bccmt.models.attention import TemporalMHSA
from bccmt.models.base import MIN_FRAMES, EmbeddingModel
from bccmt.models.blocks import BCIRFFN, BCLPU, Stem, Transition
from bccmt.models.conventional import FreqTimeMHSA
from bccmt.models.layout import channels_last_grad
from bccmt.models.pooling import FreqStatsASP

# batch x frames from which BCCMT runs its trunk in channels_last (see BCCMT.__init__)
CHANNELS_LAST_MIN_FRAMES = 3000


@dataclass
class BCCMTConfig:
    """Hyper-parameters of a BC-CMT network (all per-stage tuples have one entry per stage)."""
    channels: Tuple[int, ...] = (16, 32, 48, 64)   # channels per stage (stage 1 = stem width)
    blocks: Tuple[int, ...] = (2, 2, 4, 2)         # BC-CMT blocks per stage
    heads: Tuple[int, ...] = (1, 2, 4, 8)          # attention heads per stage (shared by sizes)
    kv_reduction: Tuple[int, ...] = (8, 4, 2, 1)   # K/V time (2dsa: time and freq) reduction r
    time_strides: Tuple[int, ...] = (2, 2, 2, 1)   # time stride at the start of each stage
    ffn_ratio: float = 2.0                         # BC-IRFFN expansion ratio R
    embedding_dim: int = 128                       # speaker embedding size E
    pool_bottleneck: int = 128                     # time-attention bottleneck of the pooling
    n_mels: int = 80                               # input fbank bins (F after stem = n_mels/2)
    sub_bands: int = 5                             # SubSpectralNorm bands (where F divisible)
    kv_groups: Optional[int] = None                # groups of the K/V conv (None = heads)
    max_distance: int = 64                         # relative position clip, in stage frames
    attention: str = "temporal"                    # "temporal" (revised) or "2d" (conventional)
    min_frames: int = MIN_FRAMES                   # shorter input raises ValueError

    def __post_init__(self):
        for name in ("channels", "blocks", "heads", "kv_reduction", "time_strides"):
            setattr(self, name, tuple(int(v) for v in getattr(self, name)))
        n = len(self.channels)
        for name in ("blocks", "heads", "kv_reduction", "time_strides"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"BCCMTConfig: {name} has {len(getattr(self, name))} entries, "
                                 f"channels has {n}")
        if self.attention not in ("temporal", "2d"):
            raise ValueError(f"BCCMTConfig: attention must be 'temporal' or '2d', "
                             f"got {self.attention!r}")

    @classmethod
    def field_names(cls) -> List[str]:
        return [f.name for f in fields(cls)]


class BCCMTBlock(nn.Module):
    """BC-LPU -> MHSA (temporal or 2-D) -> BC-IRFFN, each with its own residual."""

    def __init__(self, dim: int, freq_bins: int, heads: int, reduction: int, cfg: BCCMTConfig):
        super().__init__()
        self.lpu = BCLPU(dim, freq_bins, cfg.sub_bands)
        if cfg.attention == "temporal":
            self.attn = TemporalMHSA(dim, heads, reduction, cfg.kv_groups, cfg.max_distance)
        else:
            self.attn = FreqTimeMHSA(dim, heads, reduction, freq_bins, cfg.max_distance)
        self.ffn = BCIRFFN(dim, freq_bins, cfg.ffn_ratio, cfg.sub_bands)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        x, attn = self.attn(self.lpu(x))
        return self.ffn(x), attn


class BCCMT(EmbeddingModel):
    """BC-CMT embedding extractor; see the module docstring for shapes and the KD layer mapping."""

    def __init__(self, cfg: Union[BCCMTConfig, dict, None] = None):
        cfg = cfg if isinstance(cfg, BCCMTConfig) else BCCMTConfig(**(cfg or {}))
        ends = [sum(cfg.blocks[:i + 1]) - 1 for i in range(len(cfg.blocks))]
        super().__init__(cfg.n_mels, cfg.embedding_dim, ends, cfg.min_frames)
        self.cfg = cfg
        self.stem = Stem(cfg.channels[0], cfg.time_strides[0])
        freq = (cfg.n_mels + 1) // 2
        self.transitions = nn.ModuleList()
        self.stages = nn.ModuleList()
        for s, (dim, depth) in enumerate(zip(cfg.channels, cfg.blocks)):
            if s > 0:
                self.transitions.append(Transition(cfg.channels[s - 1], dim, cfg.time_strides[s]))
                freq = (freq + 1) // 2
            self.stages.append(nn.ModuleList(
                BCCMTBlock(dim, freq, cfg.heads[s], cfg.kv_reduction[s], cfg)
                for _ in range(depth)))
        self.pool = FreqStatsASP(cfg.channels[-1], cfg.embedding_dim, cfg.pool_bottleneck)
        # Inputs of at least this many frames in all (batch x frames) run the trunk in
        # channels_last memory format: same maths, and on CPU the depthwise/1x1 conv and
        # batch-norm kernels are 2-3x faster in it at these channel counts, which wins from about
        # 3000 frames on (training batches: 1.2x fwd+bwd). Small inputs (batch-1 extraction of
        # short utterances) keep NCHW, where its conversions would cost more than they save.
        # math.inf = always NCHW (the plain PyTorch ops; the equivalence tests' reference).
        self.channels_last_min_frames: float = CHANNELS_LAST_MIN_FRAMES
        # export mode (set_export_mode): always NCHW, so the graph has no branch on B x T
        self.export_mode = False

    def forward(self, feats: torch.Tensor, return_attention: bool = False):
        """feats (B, T, n_mels) -> (B, E), or ((B, E), [maps]) with return_attention."""
        x, maps = self._trunk(feats, sum(self.cfg.blocks))
        emb = self.pool(channels_last_grad(x))
        return (emb, maps) if return_attention else emb

    def attention_maps(self, feats: torch.Tensor, upto: int) -> List[torch.Tensor]:
        """The softmax maps of blocks 0..upto (network order), without running later blocks or the
        pooling: what a KD teacher has to compute (``upto`` = its largest distilled index)."""
        return self._trunk(feats, upto + 1)[1]

    def _trunk(self, feats: torch.Tensor, num_blocks: int):
        """Runs the first num_blocks blocks; returns (last activation, their maps)."""
        self.check_feats(feats)
        x = self.stem(feats.transpose(1, 2).unsqueeze(1))
        if (not self.export_mode  # (checked first: no size comparison in an exported graph)
                and feats.shape[0] * feats.shape[1] >= self.channels_last_min_frames):
            x = x.contiguous(memory_format=torch.channels_last)       # (B, F, T, C) storage
        maps: List[torch.Tensor] = []
        for s, stage in enumerate(self.stages):
            if s > 0:
                x = self.transitions[s - 1](x)
            for block in stage:
                if len(maps) == num_blocks:
                    return x, maps
                x, attn = block(x)
                maps.append(attn)
        return x, maps


def map_shapes(cfg: BCCMTConfig, frames: int) -> List[Tuple[int, int, int]]:
    """(heads, T_query, T_key) of every block's temporal map for an input of ``frames`` frames."""
    out, t = [], frames
    for heads, r, ts, depth in zip(cfg.heads, cfg.kv_reduction, cfg.time_strides, cfg.blocks):
        t = -(-t // ts)
        out += [(heads, t, -(-t // r))] * depth
    return out

