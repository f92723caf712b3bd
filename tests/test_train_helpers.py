"""Shared pieces of the training/KD tests: a synthetic feature dir and a fast stand-in model.

The stand-in ("standin_attn") follows the bccmt.models contract (forward(feats, return_attention),
embedding_dim, kd_layers) and is registered in bccmt.models.registry for the duration of a test, so
build_model, model_args and load_embedding_model all work on it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import List, Tuple

import numpy as np
import pytest
import torch
from torch import nn

STANDIN = "standin_attn"


@dataclasses.dataclass
class StandInConfig:
    channels: int = 16  # conv width
    heads: Tuple[int, ...] = (1, 2)  # heads per attention layer
    reduction: Tuple[int, ...] = (4, 2)  # key pooling per layer
    embedding_dim: int = 12

    @classmethod
    def field_names(cls) -> List[str]:
        return [f.name for f in dataclasses.fields(cls)]


class StandInNet(nn.Module):
    """(B, T, 80) -> conv -> attention layers (maps (B, h, T, T//r)) -> BN -> mean pool -> linear."""

    def __init__(self, cfg: StandInConfig):
        super().__init__()
        c = cfg.channels
        self.conv = nn.Conv1d(80, c, 3, padding=1)
        self.bn = nn.BatchNorm1d(c)
        self.q = nn.ModuleList(nn.Linear(c, c) for _ in cfg.heads)
        self.k = nn.ModuleList(nn.Linear(c, c) for _ in cfg.heads)
        self.heads, self.reduction = tuple(cfg.heads), tuple(cfg.reduction)
        self.drop = nn.Dropout(0.1)
        self.out = nn.Linear(c, cfg.embedding_dim)
        self.embedding_dim = cfg.embedding_dim
        self.n_mels = 80  # input size, checked against the features' num_mel_bins
        self.kd_layers = list(range(len(cfg.heads)))

    def forward(self, feats, return_attention=False):
        x = torch.relu(self.bn(self.conv(feats.transpose(1, 2)))).transpose(1, 2)  # (B, T, C)
        maps = []
        for q, k, h, r in zip(self.q, self.k, self.heads, self.reduction):
            b, t, c = x.shape
            kv = nn.functional.avg_pool1d(x.transpose(1, 2), r, r).transpose(1, 2)
            qh = q(x).view(b, t, h, c // h).transpose(1, 2)
            kh = k(kv).view(b, -1, h, c // h).transpose(1, 2)
            a = torch.softmax(qh @ kh.transpose(-1, -2) / (c // h) ** 0.5, dim=-1)
            vh = kv.view(b, -1, h, c // h).transpose(1, 2)
            x = x + (a @ vh).transpose(1, 2).reshape(b, t, c)
            maps.append(a)
        emb = self.out(self.drop(x.mean(1)))
        return (emb, maps) if return_attention else emb


@pytest.fixture
def standin(monkeypatch):
    """Registers the stand-in model under STANDIN for this test."""
    from bccmt.models import registry

    monkeypatch.setitem(registry.MODELS, STANDIN, (StandInNet, StandInConfig, {}))
    return STANDIN


def make_feats_dir(d, speakers=4, utts=6, seed=0, min_frames=60, max_frames=160,
                   short_frames=None, fbank_yaml=True) -> Path:
    """A Kaldi data dir of random fbank-like features whose speaker shows after CMN."""
    import kaldiio

    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    envs = rng.normal(0, 1, (speakers, 80)).astype(np.float32)
    u2s, nf = {}, {}
    with kaldiio.WriteHelper(f"ark,scp:{d}/feats.ark,{d}/feats.scp") as w:
        for s in range(speakers):
            for u in range(utts):
                t = int(rng.integers(min_frames, max_frames + 1))
                if short_frames is not None and u == 0:
                    t = short_frames
                amp = rng.uniform(0.2, 2.0, (t, 1)).astype(np.float32)
                x = amp * envs[s] + rng.normal(0, 0.3, (t, 80)).astype(np.float32) + 5.0
                utt = f"id{s:05d}/vid/{u:05d}"
                w(utt, x)
                u2s[utt], nf[utt] = f"id{s:05d}", t
    (d / "utt2spk").write_text("".join(f"{k} {v}\n" for k, v in sorted(u2s.items())))
    (d / "utt2num_frames").write_text("".join(f"{k} {v}\n" for k, v in sorted(nf.items())))
    if fbank_yaml:
        (d / "fbank.yaml").write_text("num_mel_bins: 80\nframe_shift_ms: 10.0\ndither: 1.0\n")
    return d


def small_config(model_name=STANDIN, **sections):
    """A fast TrainConfig: 0.6 s crops, batch 8, 2 epochs of 32 crops."""
    from bccmt.config import build_config

    d = {
        "model": {"name": model_name, "args": {}},
        "head": {"scale": 16.0, "margin": 0.1, "margin_start_epoch": 0.0, "margin_end_epoch": 1.0},
        "data": {"crop_seconds": 0.6, "min_seconds": 0.3, "samples_per_epoch": 32},
        "optim": {"lr": 0.01, "warmup_epochs": 0.5},
        "train": {"epochs": 2, "batch_size": 8, "log_every": 2, "avg_last": 2, "num_threads": 1},
    }
    for k, v in sections.items():
        for sub, val in v.items():  # one level deeper than the sections (e.g. data.spec_augment)
            node = d.setdefault(k, {})
            if isinstance(val, dict) and isinstance(node.get(sub), dict):
                node[sub] = {**node[sub], **val}
            else:
                node[sub] = val
    return build_config(d, "test")
