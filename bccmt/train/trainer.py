"""The training loop: speaker classification (AAM) with optional attention-map KD, resumable, DDP.

``run_training`` is what bccmt.bin.train calls. Rerunning it on the same exp dir resumes from the
newest models/epoch_N.pt (full state: model, head, optimiser, scheduler, grad scaler, epoch, step,
RNG states, speaker map, config); ``init_from`` instead starts a new run from weights only.
Every epoch reseeds torch/numpy/random from (seed, epoch) and the data sampler derives each crop from
(seed, epoch, position), so an interrupted-and-resumed run gives the same weights as a straight one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Dict

import numpy as np
import torch
import torch.nn.functional as F

import bccmt.models as models
from bccmt.features import load_fbank_config
from bccmt.train import checkpoint as ckpt
from bccmt.train import distributed as dist_util
from bccmt.config import TrainConfig, diff_configs, plain
from bccmt.exp import check_input_size, save_resolved
from bccmt.train.data import CropDataset, EpochBatchSampler, make_loader
from bccmt.train.schedule import build_optimizer, build_scheduler, margin_at

log = logging.getLogger(__name__)


class TrainError(RuntimeError):
    """A training run that cannot start or continue; the message says why and where."""


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
        return emb, maps, self.head(emb, labels)


def _num_threads(requested: int, local_world: int) -> int:
    if requested > 0:
        return requested
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // local_world)


def _seed_everything(seed: int, epoch: int) -> None:
    s = int(np.random.default_rng([seed, epoch]).integers(2**31))
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def _features(train_data: Path) -> Dict[str, Any]:
    path = train_data / "fbank.yaml"
    if not path.exists():
        raise TrainError(f"{path}: missing (stage 1 writes it with feats.scp); cannot record the "
                         "feature config the model is trained on")
    return load_fbank_config(path).to_dict()


def run_training(cfg: TrainConfig, train_data, exp_dir, teacher_exp=None, init_from=None,
                 device: str = "auto") -> Dict[str, Any]:
    """Trains (or resumes) into exp_dir; returns {"history": [per-epoch stats], "final": path}."""
    train_data, exp_dir = Path(train_data), Path(exp_dir)
    info = dist_util.setup(device)
    try:
        return _run(cfg, train_data, exp_dir, teacher_exp, init_from, info)
    finally:
        dist_util.cleanup(info)


def _run(cfg, train_data, exp_dir, teacher_exp, init_from, info) -> Dict[str, Any]:
    t = cfg.train
    torch.set_num_threads(_num_threads(t.num_threads, info.local_world_size))
    if (cfg.kd.enabled or cfg.kd.monitor_utts > 0) != (teacher_exp is not None):
        raise TrainError("kd.enabled: true or kd.monitor_utts > 0 (the map-KL monitor) needs "
                         "--teacher-exp, and --teacher-exp needs one of them")
    features = _features(train_data)
    cfg.model.args = plain(models.model_args(cfg.model.name, **cfg.model.args))
    models_dir = exp_dir / "models"
    resolved = {**cfg.to_dict(), "features": features}
    done = ckpt.epoch_checkpoints(models_dir)
    state = ckpt.load_state(done[-1][1]) if done else None
    if state is not None:
        changes = diff_configs(state["config"], resolved)
        if changes:
            log.warning("resuming %s with a changed config: %s", done[-1][1], "; ".join(changes))
        log.info("resuming from %s (epoch %d, step %d)", done[-1][1], state["epoch"], state["step"])
        if init_from:
            log.warning("--init-from %s ignored: resuming from %s", init_from, done[-1][1])
    if info.is_main:
        exp_dir.mkdir(parents=True, exist_ok=True)
        save_resolved(cfg.to_dict(), features, exp_dir / "config.yaml")
    log.info("resolved config: %s", resolved)
    log.info("torch threads %d, device %s, world size %d", torch.get_num_threads(), info.device,
             info.world_size)

    dataset = CropDataset(train_data, cfg.data, features["frame_shift_ms"], t.seed,
                          spk2idx=state["spk2idx"] if state else None,
                          feat_dim=features["num_mel_bins"])
    log.info("%s: %d utterances (%d shorter than a crop, tiled), %d speakers, crop %d frames",
             train_data, len(dataset), dataset.num_repeated, dataset.num_speakers, dataset.crop_frames)
    if info.is_main:
        from bccmt.io import write_kv
        write_kv(exp_dir / "spk2idx", dataset.spk2idx)

    torch.manual_seed(t.seed)
    model = models.build_model(cfg.model.name, **cfg.model.args)
    check_input_size(model, features, Path(train_data) / "fbank.yaml")
    head = models.build_head(cfg.head.name, embedding_dim=model.embedding_dim,
                             num_classes=dataset.num_speakers, scale=cfg.head.scale,
                             margin=cfg.head.margin)
    net = Classifier(model, head).to(info.device)
    if init_from and state is None:
        _load_init(net, init_from, dataset.spk2idx)

    sampler = EpochBatchSampler(len(dataset), t.batch_size, t.seed, cfg.data.samples_per_epoch,
                                info.rank, info.world_size)
    steps = sampler.steps_per_epoch()
    optimizer = build_optimizer(net.parameters(), cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, t.epochs, steps)
    use_amp = t.amp and info.device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    start_epoch, step, history = 1, 0, []
    if state is not None:
        try:
            net.model.load_state_dict(state["model"])
            net.head.load_state_dict(state["head"])
        except RuntimeError as e:
            raise TrainError(f"{done[-1][1]} does not fit the configured model/head (changed "
                             f"model.* or speakers? use a new --exp-dir): {e}") from e
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        ckpt.set_rng_state(state["rng"])
        start_epoch, step, history = state["epoch"] + 1, state["step"], state.get("history", [])

    distiller = monitor = None
    if start_epoch <= t.epochs and teacher_exp is not None:  # none when a finished run is rerun
        from bccmt.train.distill import make_distiller
        distiller, monitor = make_distiller(cfg.kd, teacher_exp, net.model, dataset, features,
                                            info)
    ddp = net
    if info.enabled:
        ddp = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[info.local_rank] if info.device.type == "cuda" else None)
    loader = make_loader(dataset, sampler, cfg.data.num_workers, info.device.type == "cuda")
    log.info("%d steps/epoch of %d crops (%d per rank), epochs %d..%d", steps, t.batch_size,
             t.batch_size // info.world_size, start_epoch, t.epochs)

    for epoch in range(start_epoch, t.epochs + 1):
        _seed_everything(t.seed, epoch)
        sampler.set_epoch(epoch)
        net.train()
        stats = _train_epoch(ddp, net, loader, optimizer, scheduler, scaler, distiller, cfg, info,
                             epoch, steps, step, use_amp)
        step += steps
        if monitor is not None:  # eval-mode maps on fixed crops: no RNG, no effect on training
            stats.update(monitor.measure(net.model))
        history.append(stats)
        dist_util.barrier(info)
        if info.is_main:
            path = models_dir / f"epoch_{epoch}.pt"
            ckpt.save_atomic({
                "epoch": epoch, "step": step, "model_name": cfg.model.name,
                "model_args": cfg.model.args, "model": net.model.state_dict(),
                "head_name": cfg.head.name, "head": net.head.state_dict(),
                "head_args": {"embedding_dim": model.embedding_dim,
                              "num_classes": dataset.num_speakers, "scale": cfg.head.scale,
                              "margin": cfg.head.margin},
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if use_amp else None, "rng": ckpt.rng_state(),
                "spk2idx": dataset.spk2idx, "config": resolved, "history": history}, path)
            ckpt.prune(models_dir, t.keep_last, t.keep_every)
            log.info("epoch %d done: %s; saved %s", epoch, _fmt(stats), path)
        dist_util.barrier(info)

    final = models_dir / "final.pt"
    if info.is_main:
        final = ckpt.write_final(exp_dir, t.avg_last)
    dist_util.barrier(info)
    return {"history": history, "final": str(final)}


def _load_init(net, path, spk2idx) -> None:
    m_state, h_state, old_spk = ckpt.load_init_weights(path)
    try:
        net.model.load_state_dict(m_state, strict=True)
    except RuntimeError as e:
        raise TrainError(f"--init-from {path}: weights do not fit the configured model: {e}") from e
    if h_state is not None and old_spk == spk2idx:
        net.head.load_state_dict(h_state, strict=True)
        log.info("--init-from %s: embedding model and head weights loaded", path)
    else:
        log.info("--init-from %s: embedding model weights loaded; new head (speakers differ)", path)


def _fmt(stats: Dict[str, float]) -> str:
    return " ".join(f"{k} {v:.4g}" for k, v in stats.items() if k != "epoch")


def _train_epoch(ddp, net, loader, optimizer, scheduler, scaler, distiller, cfg, info, epoch,
                 steps, step0, use_amp) -> Dict[str, float]:
    """One epoch; returns mean loss terms, accuracy and throughput (averaged over ranks)."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    t, kd = cfg.train, distiller is not None
    names = ["loss", *(distiller.term_names() if kd else ["aam"]), "acc"]
    epoch_sum = torch.zeros(len(names), dtype=torch.float64, device=info.device)
    win_sum, win_n, win_start = torch.zeros_like(epoch_sum), 0, time.time()
    epoch_start = time.time()
    crop_s = cfg.data.crop_seconds
    autocast = (torch.autocast("cuda", dtype=torch.float16) if use_amp else contextlib.nullcontext())
    bar = tqdm(total=steps, desc=f"epoch {epoch}", unit="step", leave=False, file=sys.stderr,
               disable=not (info.is_main and sys.stderr.isatty()))
    with logging_redirect_tqdm():
        for i, (feats, labels) in enumerate(loader):
            feats = feats.to(info.device, non_blocking=True)
            labels = labels.to(info.device, non_blocking=True)
            frac = (step0 + i) / steps
            margin = margin_at(frac, cfg.head)
            net.head.margin = margin
            with autocast:
                emb, maps, logits = ddp(feats, labels, return_attention=kd)
                aam = F.cross_entropy(logits.float(), labels)
                loss, terms = distiller.loss(aam, feats, emb, maps) if kd else (aam, {"aam": aam})
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.optim.grad_clip > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.optim.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            acc = net.head.accuracy(emb, labels)  # margin-free: a margin is not a collapse
            vals = {"loss": loss, "acc": acc, **terms}
            win_sum += torch.stack([vals[n].detach().double() for n in names])  # no GPU sync
            win_n += 1
            bar.update(1)
            if win_n == t.log_every or i == steps - 1:
                mean = dist_util.all_reduce_mean(win_sum / win_n, info)
                dt = time.time() - win_start
                rate = win_n * t.batch_size / max(dt, 1e-9)
                if info.is_main:
                    log.info("epoch %d step %d/%d %s lr %.3g margin %.3f samples/s %.1f "
                             "(%.1f s audio/s)", epoch, i + 1, steps,
                             " ".join(f"{n} {v:.4f}" for n, v in zip(names, mean.tolist())),
                             optimizer.param_groups[0]["lr"], margin, rate, rate * crop_s)
                bar.set_postfix(loss=f"{mean[0]:.3f}", acc=f"{mean[names.index('acc')]:.3f}")
                epoch_sum += win_sum
                win_sum.zero_()
                win_n, win_start = 0, time.time()
    bar.close()
    mean = dist_util.all_reduce_mean(epoch_sum / steps, info)
    wall = time.time() - epoch_start
    out = {"epoch": float(epoch), **dict(zip(names, mean.tolist()))}
    out.update(samples_per_s=steps * t.batch_size / wall, audio_s_per_s=steps * t.batch_size * crop_s / wall,
               minutes=wall / 60.0)
    return out
