"""Checkpoints: full training state per epoch and the averaged final model (loading: bccmt.exp).

What training writes into an experiment directory (paths: bccmt.exp.ExpLayout):
  config.yaml            resolved config (with ``model: {name, args}`` and ``features``)
  models/epoch_N.pt      full state after epoch N (see ``training_state``), written atomically
  history.jsonl          one JSON object per finished epoch: epoch, loss and its terms
                         (aam, KD terms), acc, samples_per_s, audio_s_per_s, minutes, lr and
                         margin at the epoch's end (plus KD diagnostics when monitored);
                         rewritten atomically after each epoch, so a resume continues it
  models/final.pt        {"model_name", "model_args", "state_dict" (embedding model only),
                          "spk2idx", "epochs_averaged", "head_name", "head_args",
                          "head_state_dict"} - the average of the last N epoch checkpoints
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import torch

from bccmt.exp import CheckpointError, ExpLayout, epoch_checkpoints, load_state
from bccmt.io.tables import temp_beside

log = logging.getLogger(__name__)


def write_history(path, history: List[Dict[str, float]]) -> None:
    """Writes the per-epoch history as JSON lines (atomically: a reader never sees half a file)."""
    import json

    from bccmt.io.tables import atomic_write

    with atomic_write(path, encoding="utf-8") as f:
        for row in history:
            f.write(json.dumps(row, sort_keys=False) + "\n")


def read_history(exp_dir) -> List[Dict[str, float]]:
    """exp_dir/history.jsonl as a list of dicts ([] if training has not finished an epoch);
    a malformed line is an error naming the file and line."""
    import json

    path = ExpLayout(exp_dir).history
    if not path.is_file():
        return []
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            rows.append(json.loads(line))
        except ValueError as e:
            raise ValueError(f"{path}:{lineno}: not a JSON object ({e})") from None
    return rows


def save_atomic(obj: Any, path) -> None:
    """torch.save to a temp file beside ``path``, fsync, then rename (never a half-written file)."""
    path = Path(path)
    fd, tmp = temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def training_state(*, epoch: int, step: int, cfg, net, optimizer, scheduler, scaler, spk2idx,
                   resolved: Dict[str, Any], history: List[Dict[str, float]]) -> Dict[str, Any]:
    """The dict saved as models/epoch_N.pt after an epoch: everything a resume needs, and the
    model and head in the form write_final averages (``scaler``: None without mixed precision)."""
    head = net.head
    return {
        "epoch": epoch, "step": step, "model_name": cfg.model.name, "model_args": cfg.model.args,
        "model": net.model.state_dict(), "head_name": cfg.head.name, "head": head.state_dict(),
        "head_args": {"embedding_dim": net.model.embedding_dim, "num_classes": len(spk2idx),
                      "scale": cfg.head.scale, "margin": cfg.head.margin},
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None, "rng": rng_state(),
        "spk2idx": spk2idx, "config": resolved, "history": history}


def rng_state() -> Dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def prune(models_dir, keep_last: int, keep_every: int = 0) -> None:
    """Deletes all but the newest ``keep_last`` epoch checkpoints and, with keep_every > 0, every
    epoch that is a multiple of it (mid-training checkpoints, e.g. for a teacher-quality study)."""
    for epoch, path in epoch_checkpoints(models_dir)[:-keep_last]:
        if keep_every > 0 and epoch % keep_every == 0:
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def average_state_dicts(states: List[Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
    """Element-wise mean of floating tensors; integer buffers (BN counters) come from the last."""
    if not states:
        raise CheckpointError("nothing to average")
    keys = list(states[-1])
    for i, s in enumerate(states):
        if list(s) != keys:
            raise CheckpointError(f"state dict {i} has different keys from the last one")
    out = {}
    for k in keys:
        last = states[-1][k]
        if torch.is_floating_point(last):
            out[k] = (sum(s[k].double() for s in states) / len(states)).to(last.dtype)
        else:
            out[k] = last.clone()
    return out


def write_final(exp_dir, avg_last: int) -> Path:
    """Averages the last ``avg_last`` epoch checkpoints into exp_dir/models/final.pt."""
    layout = ExpLayout(exp_dir)
    models_dir = layout.models
    ckpts = epoch_checkpoints(models_dir)[-avg_last:]
    if not ckpts:
        raise CheckpointError(f"{models_dir}: no epoch_N.pt to average")
    states = [load_state(p) for _, p in ckpts]
    last = states[-1]
    final = {
        "model_name": last["model_name"],
        "model_args": last["model_args"],
        "state_dict": average_state_dicts([s["model"] for s in states]),
        "spk2idx": last["spk2idx"],
        "epochs_averaged": [e for e, _ in ckpts],
        "head_name": last["head_name"],
        "head_args": last["head_args"],
        "head_state_dict": average_state_dicts([s["head"] for s in states]),
    }
    path = layout.final
    save_atomic(final, path)
    log.info("wrote %s (average of epochs %s)", path, final["epochs_averaged"])
    return path


def load_init_weights(path) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor], dict]:
    """(model state, head state or None, spk2idx) from an epoch_N.pt or a final.pt, for
    --init-from (weights only: no optimiser, schedule or epoch counter)."""
    d = load_state(path)
    if "state_dict" in d:  # final.pt
        return d["state_dict"], d.get("head_state_dict"), d.get("spk2idx", {})
    if "model" in d:  # epoch_N.pt
        return d["model"], d.get("head"), d.get("spk2idx", {})
    raise CheckpointError(f"{path}: neither a final.pt nor an epoch_N.pt checkpoint")
