"""The exp-dir contract: what a trained model directory holds and how a model is loaded from it.

    <exp>/config.yaml          the resolved training config (every section, defaults filled in)
                               plus ``features``, a copy of the training data's fbank.yaml, and
                               ``config_file``, the recipe config it came from; read_resolved
                               hands it out as an ExpConfig whose ``features`` is an FbankConfig
    <exp>/models/epoch_N.pt    training checkpoints (model, head, optimiser, RNG, history)
    <exp>/models/final.pt      the model used downstream: the average of the last
                               ``train.avg_last`` epochs, with its classifier head and spk2idx

Training writes these (bccmt.train); extraction, KD teachers, export and the reports read them
through this module only, so a missing or mismatched exp dir raises the same errors everywhere:
ConfigError for config.yaml, CheckpointError for models/*.pt.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
import yaml

from bccmt.config import ConfigError
from bccmt.features import FbankConfig, FbankConfigError

EPOCH_RE = re.compile(r"^epoch_(\d+)\.pt$")
FINAL_KEYS = ("model_name", "model_args", "state_dict", "spk2idx")


class CheckpointError(RuntimeError):
    """A missing or unusable checkpoint; the message names the file."""


@dataclasses.dataclass
class ExpConfig:
    """<exp>/config.yaml, read: the resolved training config and its typed feature config."""

    config: Dict[str, Any]   # every section of the resolved config, ``features`` excepted
    features: FbankConfig    # the training data's fbank config (training dither included)
    path: Path               # the config.yaml it was read from

    @property
    def model_name(self) -> str:
        return str(self.config["model"]["name"])


def save_resolved(config: Dict[str, Any], features: FbankConfig, path: Union[str, Path],
                  config_file: Optional[str] = None) -> None:
    """Writes <exp>/config.yaml: the resolved config (``TrainConfig.to_dict()``) plus ``features``
    and, when known, ``config_file``, the recipe config it was resolved from (atomically)."""
    from bccmt.io import atomic_write

    if not isinstance(features, FbankConfig):
        raise TypeError(f"save_resolved: features must be an FbankConfig, got {type(features)}")
    d = {"config_file": str(config_file)} if config_file else {}
    d.update(config)
    d["features"] = features.to_dict()
    with atomic_write(path, encoding="utf-8") as f:
        yaml.safe_dump(d, f, sort_keys=False, default_flow_style=None)


def read_resolved(path: Union[str, Path]) -> ExpConfig:
    """Reads an exp dir's config.yaml (``model`` and ``features`` must be there; ``features`` must
    be a valid FbankConfig). Errors are ConfigError naming the file."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            d = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (was the model trained?)") from None
    if not isinstance(d, dict) or "model" not in d or "features" not in d:
        raise ConfigError(f"{path}: expected a resolved training config with 'model' and 'features'")
    try:
        features = FbankConfig.from_dict(d.pop("features"), f"{path} 'features'")
    except FbankConfigError as e:
        raise ConfigError(str(e)) from None
    return ExpConfig(d, features, path)


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
    for key in FINAL_KEYS:
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


def check_input_size(model: torch.nn.Module, features: FbankConfig, source) -> None:
    """Raises ConfigError unless the model's input size equals the features' num_mel_bins."""
    n_mels = getattr(model, "n_mels", None)
    bins = features.num_mel_bins
    if n_mels is not None and int(n_mels) != bins:
        raise ConfigError(f"{source}: the model takes {n_mels} fbank bins but the features have "
                          f"num_mel_bins {bins} (set model.args.n_mels, or recompute the fbank)")


def load_embedding_model(exp_dir, device="cpu", checkpoint: Optional[str] = None):
    """(embedding model in eval mode on ``device``, its ExpConfig) from exp_dir.

    Reads exp_dir/config.yaml and exp_dir/models/final.pt (or ``checkpoint``, see load_final);
    the state dict must match exactly, and the model's input size the config's features.
    """
    from bccmt.models import build_model

    cfg = read_resolved(Path(exp_dir) / "config.yaml")
    final = load_final(exp_dir, checkpoint)
    model = build_model(final["model_name"], **final["model_args"])
    try:
        model.load_state_dict(final["state_dict"], strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{exp_dir}/models/{checkpoint or 'final.pt'} does not match model "
                              f"'{final['model_name']}': {e}") from e
    check_input_size(model, cfg.features, cfg.path)
    return model.to(device).eval(), cfg
