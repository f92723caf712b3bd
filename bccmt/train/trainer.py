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
from bccmt.config import TrainConfig, diff_configs, plain
from bccmt.exp import ExpLayout, check_input_size, save_resolved
from bccmt.features import FbankConfig, load_fbank_config
from bccmt.train import checkpoint as ckpt
from bccmt.train import distributed as dist_util
from bccmt.train.data import CropDataset, EpochBatchSampler, make_loader
from bccmt.train.run import Classifier, Run
from bccmt.train.schedule import (build_optimizer, build_scheduler, margin_at,
                                  schedule_warnings)

log = logging.getLogger(__name__)


class TrainError(RuntimeError):
    """A training run that cannot start or continue; the message says why and where."""


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


def _features(train_data: Path) -> FbankConfig:
    """The training data's fbank config (<train_data>/fbank.yaml), the model's feature config."""
    path = train_data / "fbank.yaml"
    if not path.exists():
        raise TrainError(f"{path}: missing (stage 1 writes it with feats.scp); cannot record the "
                         "feature config the model is trained on")
    return load_fbank_config(path)


def run_training(cfg: TrainConfig, train_data, exp_dir, teacher_exp=None, init_from=None,
                 device: str = "auto", config_file=None) -> Dict[str, Any]:
    """Trains (or resumes) into exp_dir; returns {"history": [per-epoch stats], "final": path}.
    ``config_file``: the recipe config cfg came from, recorded in <exp_dir>/config.yaml."""
    train_data, exp_dir = Path(train_data), Path(exp_dir)
    info = dist_util.setup(device)
    try:
        return _run(cfg, train_data, exp_dir, teacher_exp, init_from, info, config_file)
    finally:
        dist_util.cleanup(info)


def _run(cfg, train_data, exp_dir, teacher_exp, init_from, info, config_file=None) -> Dict[str, Any]:
    torch.set_num_threads(_num_threads(cfg.train.num_threads, info.local_world_size))
    if (cfg.kd.enabled or cfg.kd.monitor_utts > 0) != (teacher_exp is not None):
        raise TrainError("kd.enabled: true or kd.monitor_utts > 0 (the map-KL monitor) needs "
                         "--teacher-exp, and --teacher-exp needs one of them")
    done = ckpt.epoch_checkpoints(ExpLayout(exp_dir).models)
    state = ckpt.load_state(done[-1][1]) if done else None
    run = _build(cfg, train_data, exp_dir, info, state, config_file)
    if state is not None:
        _restore(run, state, done[-1][1], init_from)
    elif init_from:
        _load_init(run.net, init_from, run.dataset.spk2idx)
    if run.start_epoch <= cfg.train.epochs and teacher_exp is not None:  # not on a finished rerun
        from bccmt.train.distill import make_distiller
        run.distiller, run.monitor = make_distiller(cfg.kd, teacher_exp, run.net.model,
                                                    run.dataset, run.features, info)
    return _fit(run)


def _build(cfg, train_data, exp_dir, info, state, config_file=None) -> Run:
    """The run's config.yaml, data, model, head, optimiser and schedule, before any resume."""
    t = cfg.train
    features = _features(train_data)
    cfg.model.args = plain(models.model_args(cfg.model.name, **cfg.model.args))
    resolved = {**cfg.to_dict(), "features": features.to_dict()}
    if info.is_main:
        exp_dir.mkdir(parents=True, exist_ok=True)
        save_resolved(cfg.to_dict(), features, ExpLayout(exp_dir).config, config_file)
    log.info("resolved config: %s", resolved)
    log.info("torch threads %d, device %s, world size %d", torch.get_num_threads(), info.device,
             info.world_size)
    dataset = CropDataset(train_data, cfg.data, features, t.seed,
                          spk2idx=state["spk2idx"] if state else None)
    log.info("%s: %d utterances (%d shorter than a crop, tiled), %d speakers, crop %d frames",
             train_data, len(dataset), dataset.num_repeated, dataset.num_speakers, dataset.crop_frames)
    _check_spec_augment(cfg.data.spec_augment, dataset)
    for warning in schedule_warnings(cfg):
        log.warning("%s", warning)
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
    sampler = EpochBatchSampler(len(dataset), t.batch_size, t.seed, cfg.data.samples_per_epoch,
                                info.rank, info.world_size)
    optimizer = build_optimizer(net.parameters(), cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, t.epochs, sampler.steps_per_epoch())
    use_amp = t.amp and info.device.type == "cuda"
    return Run(cfg, info, exp_dir, resolved, features, dataset, net, sampler, optimizer, scheduler,
               torch.amp.GradScaler("cuda", enabled=use_amp), use_amp)


def _check_spec_augment(sa, dataset: CropDataset) -> None:
    """SpecAugment's masks must leave part of every crop: together they may cover less than the
    crop's frequency bins and frames (each mask is up to its width, placed at random)."""
    if not sa.enabled:
        return
    for masks, width, size, what in ((sa.freq_masks, sa.freq_width, dataset.feat_dim, "freq"),
                                     (sa.time_masks, sa.time_width, dataset.crop_frames, "time")):
        if masks * width >= size:
            unit = "fbank bins" if what == "freq" else "crop frames"
            raise TrainError(f"data.spec_augment: {masks} {what} masks of up to {width} can cover "
                             f"all {size} {unit}; lower data.spec_augment.{what}_masks or "
                             f"{what}_width")
    log.info("SpecAugment: %d freq masks of 0..%d of %d bins, %d time masks of 0..%d of %d frames",
             sa.freq_masks, sa.freq_width, dataset.feat_dim, sa.time_masks, sa.time_width,
             dataset.crop_frames)


def _restore(run: Run, state: Dict[str, Any], path: Path, init_from) -> None:
    """Resumes ``run`` from a full epoch checkpoint (weights, optimiser, schedule, RNG, history)."""
    changes = diff_configs(state["config"], run.resolved)
    if changes:
        log.warning("resuming %s with a changed config: %s", path, "; ".join(changes))
    log.info("resuming from %s (epoch %d, step %d)", path, state["epoch"], state["step"])
    if init_from:
        log.warning("--init-from %s ignored: resuming from %s", init_from, path)
    try:
        run.net.model.load_state_dict(state["model"])
        run.net.head.load_state_dict(state["head"])
    except RuntimeError as e:
        raise TrainError(f"{path} does not fit the configured model/head (changed model.* or "
                         f"speakers? use a new --exp-dir): {e}") from e
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    if state.get("scaler"):
        run.scaler.load_state_dict(state["scaler"])
    ckpt.set_rng_state(state["rng"])
    run.start_epoch, run.step = state["epoch"] + 1, state["step"]
    run.history = state.get("history", [])


def _fit(run: Run) -> Dict[str, Any]:
    """The epoch loop from run.start_epoch, a checkpoint per epoch, then final.pt."""
    cfg, info, t = run.cfg, run.info, run.cfg.train
    layout = ExpLayout(run.exp_dir)
    run.ddp = run.net
    if info.enabled:
        run.ddp = torch.nn.parallel.DistributedDataParallel(
            run.net, device_ids=[info.local_rank] if info.device.type == "cuda" else None)
    run.loader = make_loader(run.dataset, run.sampler, cfg.data.num_workers,
                             info.device.type == "cuda")
    log.info("data loader: %d worker processes (persistent %s)", run.loader.num_workers,
             run.loader.persistent_workers)
    log.info("%d steps/epoch of %d crops (%d per rank), epochs %d..%d", run.steps, t.batch_size,
             t.batch_size // info.world_size, run.start_epoch, t.epochs)
    for epoch in range(run.start_epoch, t.epochs + 1):
        _seed_everything(t.seed, epoch)
        run.sampler.set_epoch(epoch)
        run.net.train()
        stats = _train_epoch(run, epoch)
        run.step += run.steps
        if run.monitor is not None:  # eval-mode maps on fixed crops: no RNG, no effect on training
            stats.update(run.monitor.measure(run.net.model))
        run.history.append(stats)
        dist_util.barrier(info)
        if info.is_main:
            path = layout.epoch(epoch)
            ckpt.save_atomic(ckpt.training_state(
                epoch=epoch, step=run.step, cfg=cfg, net=run.net, optimizer=run.optimizer,
                scheduler=run.scheduler, scaler=run.scaler if run.use_amp else None,
                spk2idx=run.dataset.spk2idx, resolved=run.resolved, history=run.history), path)
            ckpt.prune(layout.models, t.keep_last, t.keep_every)
            ckpt.write_history(layout.history, run.history)
            log.info("epoch %d done: %s; saved %s", epoch, _fmt(stats), path)
        dist_util.barrier(info)

    final = layout.final
    if info.is_main:
        final = ckpt.write_final(run.exp_dir, t.avg_last)
    dist_util.barrier(info)
    return {"history": run.history, "final": str(final)}


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


def _train_epoch(run: Run, epoch: int) -> Dict[str, float]:
    """One epoch; returns mean loss terms, accuracy and throughput (averaged over ranks)."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    cfg, info, steps = run.cfg, run.info, run.steps
    t = cfg.train
    names = ["loss", *(run.distiller.term_names() if run.distiller else ["aam"]), "acc"]
    epoch_sum = torch.zeros(len(names), dtype=torch.float64, device=info.device)
    win_sum, win_n, win_start = torch.zeros_like(epoch_sum), 0, time.time()
    epoch_start = time.time()
    crop_s = cfg.data.crop_seconds
    bar = tqdm(total=steps, desc=f"epoch {epoch}", unit="step", leave=False, file=sys.stderr,
               disable=not (info.is_main and sys.stderr.isatty()))
    with logging_redirect_tqdm():
        for i, (feats, labels) in enumerate(run.loader):
            margin = margin_at((run.step + i) / steps, cfg.head)
            vals = _train_step(run, feats.to(info.device, non_blocking=True),
                               labels.to(info.device, non_blocking=True), margin)
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
                             run.optimizer.param_groups[0]["lr"], margin, rate, rate * crop_s)
                bar.set_postfix(loss=f"{mean[0]:.3f}", acc=f"{mean[names.index('acc')]:.3f}")
                epoch_sum += win_sum
                win_sum.zero_()
                win_n, win_start = 0, time.time()
    bar.close()
    mean = dist_util.all_reduce_mean(epoch_sum / steps, info)
    wall = time.time() - epoch_start
    out = {"epoch": float(epoch), **dict(zip(names, mean.tolist()))}
    out.update(samples_per_s=steps * t.batch_size / wall, audio_s_per_s=steps * t.batch_size * crop_s / wall,
               minutes=wall / 60.0, lr=float(run.optimizer.param_groups[0]["lr"]),
               margin=float(run.net.head.margin))  # both at the epoch's last step
    return out


def _train_step(run: Run, feats, labels, margin: float) -> Dict[str, torch.Tensor]:
    """One optimiser step on a batch; returns {"loss", "acc", and the loss's named terms}."""
    net, distiller, optimizer, scaler = run.net, run.distiller, run.optimizer, run.scaler
    net.head.margin = margin
    autocast = (torch.autocast("cuda", dtype=torch.float16) if run.use_amp
                else contextlib.nullcontext())
    with autocast:
        emb, maps, logits = run.ddp(feats, labels, return_attention=distiller is not None)
        aam = F.cross_entropy(logits.float(), labels)
        loss, terms = (distiller.loss(aam, feats, emb, maps) if distiller is not None
                       else (aam, {"aam": aam}))
    # before the step: after it, the class centres of this batch's labels have just been pulled
    # towards these embeddings, and the accuracy would credit that (at 5,994 classes it read 50%
    # on speakers the model had never seen)
    acc = net.head.accuracy(emb, labels)  # margin-free: a margin is not a collapse
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if run.cfg.optim.grad_clip > 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(net.parameters(), run.cfg.optim.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    run.scheduler.step()
    return {"loss": loss, "acc": acc, **terms}
