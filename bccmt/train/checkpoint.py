"""Checkpoints: full training state per epoch, averaged final model, loading for extraction/KD.

Layout of an experiment directory:
  exp/X/config.yaml            resolved config (with ``model: {name, args}`` and ``features``)
  exp/X/models/epoch_N.pt      full state after epoch N (see ``training_state``), written atomically
  exp/X/models/final.pt        {"model_name", "model_args", "state_dict" (embedding model only),
                                "spk2idx", "epochs_averaged", "head_name", "head_args",
                                "head_state_dict"} - the average of the last N epoch checkpoints
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from bccmt.io.tables import temp_beside

log = logging.getLogger(__name__)
EPOCH_RE = re.compile(r"^epoch_(\d+)\.pt$")


class CheckpointError(RuntimeError):
    """A missing or unusable checkpoint; the message names the file."""


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


def epoch_checkpoints(models_dir) -> List[Tuple[int, Path]]:
    """[(epoch, path)] of models_dir/epoch_N.pt, sorted by epoch."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        return []
    found = [(int(m.group(1)), models_dir / n) for n in os.listdir(models_dir)
             if (m := EPOCH_RE.match(n))]
    return sorted(found)


def load_state(path) -> Dict[str, Any]:
    """Loads a full training checkpoint (our own files, so arbitrary pickled RNG state is fine)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except Exception as e:  # noqa: BLE001 - corrupt/truncated file: name it
        raise CheckpointError(f"{path}: cannot load checkpoint ({e})") from e


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
    models_dir = Path(exp_dir) / "models"
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
    path = models_dir / "final.pt"
    save_atomic(final, path)
    log.info("wrote %s (average of epochs %s)", path, final["epochs_averaged"])
    return path


def load_final(exp_dir, checkpoint: Optional[str] = None) -> Dict[str, Any]:
    """exp_dir/models/final.pt, or with ``checkpoint`` (a file name in models/, e.g. epoch_10.pt)
    that checkpoint's model and head in the final.pt layout (no averaging)."""
    if checkpoint not in (None, "final.pt"):
        return _epoch_as_final(Path(exp_dir) / "models", checkpoint)
    path = Path(exp_dir) / "models" / "final.pt"
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file (training not finished?)") from None
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"{path}: cannot load ({e})") from e
    for key in ("model_name", "model_args", "state_dict", "spk2idx"):
        if key not in d:
            raise CheckpointError(f"{path}: missing key '{key}' (not a bccmt final model)")
    return d


def _epoch_as_final(models_dir: Path, name: str) -> Dict[str, Any]:
    if not EPOCH_RE.match(name):
        raise CheckpointError(f"checkpoint '{name}': expected final.pt or epoch_N.pt (a file in "
                              f"{models_dir})")
    path = models_dir / name
    if not path.is_file():
        kept = ", ".join(p.name for _, p in epoch_checkpoints(models_dir)) or "none"
        raise CheckpointError(f"{path}: no such checkpoint (kept: {kept}; train.keep_last and "
                              "train.keep_every choose which epochs stay on disk)")
    d = load_state(path)
    return {"model_name": d["model_name"], "model_args": d["model_args"], "state_dict": d["model"],
            "spk2idx": d["spk2idx"], "epochs_averaged": [d["epoch"]], "head_name": d["head_name"],
            "head_args": d["head_args"], "head_state_dict": d["head"]}


def load_embedding_model(exp_dir, device="cpu", checkpoint: Optional[str] = None):
    """(embedding model in eval mode on ``device``, resolved config dict) from exp_dir.

    Reads exp_dir/config.yaml and exp_dir/models/final.pt (or ``checkpoint``, see load_final);
    the state dict must match exactly.
    """
    from bccmt.models import build_model
    from bccmt.train.config import read_resolved

    cfg = read_resolved(Path(exp_dir) / "config.yaml")
    final = load_final(exp_dir, checkpoint)
    model = build_model(final["model_name"], **final["model_args"])
    try:
        model.load_state_dict(final["state_dict"], strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{exp_dir}/models/{checkpoint or 'final.pt'} does not match model "
                              f"'{final['model_name']}': {e}") from e
    return model.to(device).eval(), cfg


def load_init_weights(path) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor], dict]:
    """(model state, head state or None, spk2idx) from an epoch_N.pt or a final.pt, for
    --init-from (weights only: no optimiser, schedule or epoch counter)."""
    d = load_state(path)
    if "state_dict" in d:  # final.pt
        return d["state_dict"], d.get("head_state_dict"), d.get("spk2idx", {})
    if "model" in d:  # epoch_N.pt
        return d["model"], d.get("head"), d.get("spk2idx", {})
    raise CheckpointError(f"{path}: neither a final.pt nor an epoch_N.pt checkpoint")
