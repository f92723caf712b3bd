"""Optimiser, learning-rate schedule (linear warm-up, then decay) and AAM margin schedule.

Both schedules are functions of the (fractional) epoch = step / steps_per_epoch, so they do not
change shape when the number of steps per epoch changes.
"""

from __future__ import annotations

import math
from typing import List

import torch

from bccmt.config import HeadSection, OptimSection, TrainConfig


def build_optimizer(params, cfg: OptimSection) -> torch.optim.Optimizer:
    """AdamW or SGD (momentum, Nesterov) at the peak learning rate cfg.lr."""
    params = [p for p in params if p.requires_grad]
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimiser '{cfg.name}'; valid: adamw, sgd")


def lr_factor(epoch: float, total_epochs: int, cfg: OptimSection) -> float:
    """Multiplier of cfg.lr at a fractional epoch: 0 -> 1 linearly over warm-up, then decay so
    that the last epoch ends at cfg.final_lr (exponential or cosine) or stays at 1 (constant).
    With cfg.decay_epochs = D the peak is held after warm-up and the decay takes the last D epochs
    only (warm-up / hold / decay); null decays over everything after the warm-up."""
    if cfg.warmup_epochs > 0 and epoch < cfg.warmup_epochs:
        return max(epoch, 1e-3 * cfg.warmup_epochs) / cfg.warmup_epochs
    if cfg.schedule == "constant":
        return 1.0
    start = cfg.warmup_epochs
    if cfg.decay_epochs is not None:
        start = max(start, total_epochs - cfg.decay_epochs)
    span = max(total_epochs - start, 1e-9)
    frac = min(max((epoch - start) / span, 0.0), 1.0)
    end = cfg.final_lr / cfg.lr
    if cfg.schedule == "exponential":
        return end ** frac if end > 0 else 1.0 - frac
    return end + (1.0 - end) * 0.5 * (1.0 + math.cos(math.pi * frac))


def build_scheduler(optimizer, cfg: OptimSection, total_epochs: int, steps_per_epoch: int):
    """A LambdaLR stepped once per optimiser step (its state_dict is the step count)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step / steps_per_epoch, total_epochs, cfg))


def margin_at(epoch: float, cfg: HeadSection) -> float:
    """AAM margin at a fractional epoch: 0 before margin_start_epoch, linear ramp to cfg.margin
    at margin_end_epoch (a step if start == end)."""
    if epoch < cfg.margin_start_epoch:
        return 0.0
    if epoch >= cfg.margin_end_epoch:
        return cfg.margin
    span = cfg.margin_end_epoch - cfg.margin_start_epoch
    return cfg.margin * (epoch - cfg.margin_start_epoch) / span


def schedule_warnings(cfg: TrainConfig) -> List[str]:
    """What the epoch-based schedules will not do within ``train.epochs`` (a schedule written for
    a long run, e.g. conf/voxceleb's, run for a few epochs without squeezing its epoch keys)."""
    epochs, o, h = cfg.train.epochs, cfg.optim, cfg.head
    out = []
    if o.warmup_epochs > epochs:
        out.append(f"optim.warmup_epochs {o.warmup_epochs:g} > train.epochs {epochs}: the "
                   f"learning rate never reaches optim.lr {o.lr:g} (peak "
                   f"{o.lr * lr_factor(epochs, epochs, o):.3g})")
    if h.margin > 0 and h.margin_end_epoch > epochs:
        out.append(f"head.margin_end_epoch {h.margin_end_epoch:g} > train.epochs {epochs}: the "
                   f"margin ends at {margin_at(epochs, h):.3g}, not head.margin {h.margin:g}")
    return out
