"""What a training run holds: the model with its margin head, and the state between epochs."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Dict, List

import torch

from bccmt.config import TrainConfig
from bccmt.features import FbankConfig
from bccmt.train.data import CropDataset, EpochBatchSampler


class Classifier(torch.nn.Module):
    """Embedding model + margin head, wrapped together so DDP syncs both in one pass."""

    def __init__(self, model, head):
        super().__init__()
        self.model, self.head = model, head

    def forward(self, feats, labels, return_attention: bool = False):
        if return_attention:
            emb, maps = self.model(feats, return_attention=True)
        else:
            emb, maps = self.model(feats), None
        # the margin head in float32, also under autocast (AMP): in float16 a cosine within 2.4e-4
        # of 1 rounds to 1, where AAM's sqrt(1 - cos^2) has an infinite gradient (a skipped step)
        with torch.autocast(feats.device.type, enabled=False):
            logits = self.head(emb.float(), labels)
        return emb, maps, logits


@dataclasses.dataclass
class Run:
    """Everything one training run holds between its epochs."""

    cfg: TrainConfig
    info: Any  # dist_util.DistInfo
    exp_dir: Path
    resolved: Dict[str, Any]  # the config plus features, as config.yaml and checkpoints hold it
    features: FbankConfig  # the training data's fbank config (in resolved as a plain mapping)
    dataset: CropDataset
    net: Classifier
    sampler: EpochBatchSampler
    optimizer: Any
    scheduler: Any
    scaler: Any
    use_amp: bool
    ddp: Any = None  # net, or its DistributedDataParallel wrapper
    loader: Any = None
    distiller: Any = None  # bccmt.kd.teacher.Distiller with kd.enabled
    monitor: Any = None  # bccmt.kd.diagnostics.MapMonitor with kd.monitor_utts > 0
    start_epoch: int = 1
    step: int = 0
    history: List[Dict[str, float]] = dataclasses.field(default_factory=list)

    @property
    def steps(self) -> int:
        return self.sampler.steps_per_epoch()
