"""The exp-dir contract: where an experiment's files live and how a model is loaded from it.

ExpLayout(<exp>) names every path below; no other module spells them (the shell stages do:
local/score.sh, local/extract_embeddings.sh, local/export_model.sh, egs/voxceleb/run.sh).

    <exp>/config.yaml          the resolved training config (every section, defaults filled in)
                               plus ``features``, a copy of the training data's fbank.yaml, and
                               ``config_file``, the recipe config it came from; read_resolved
                               hands it out as an ExpConfig whose ``features`` is an FbankConfig
    <exp>/train.log            the training log (bccmt.bin.train)
    <exp>/history.jsonl        one JSON object per finished epoch (bccmt.train.checkpoint)
    <exp>/models/epoch_N.pt    training checkpoints (model, head, optimiser, RNG, history)
    <exp>/models/final.pt      the model used downstream: the average of the last
                               ``train.avg_last`` epochs, with its classifier head and spk2idx
    <exp>/embeddings/<set>/    stage 4, one EmbeddingsDir per data set: xvector.{ark,scp},
                               spk_xvector.{ark,scp} (speaker means, --spk-mean), utt2spk,
                               extract.yaml (how they were made); extraction jobs write
                               xvector.<j>.{ark,scp} there first
    <exp>/scores/<trials>.<backend>.{score,result}
                               stage 5: scores in trial order and their metrics
                               (<trials>: the trial list's file name without its extension)
    <exp>/export/              stage 7: model.onnx, metadata.json, ... (bccmt.export.pipeline)
    <exp>/export_eval/<runtime>/{embeddings/<set>,scores}/
                               stage 7: the exported model's embeddings and scores per runtime
                               (fp32, int8, sherpa), laid out like <exp>'s: ExpLayout.export_eval

Training writes config.yaml and models/ (bccmt.train); extraction, KD teachers, export and the
reports read them through this module only, so a missing or mismatched exp dir raises the same
errors everywhere: ConfigError for config.yaml, CheckpointError for models/*.pt. The layout part
imports neither torch nor the training config, so torch-free stages (scoring, the reports) use it.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple, Union

import yaml

if TYPE_CHECKING:
    import torch

    from bccmt.features import FbankConfig

EPOCH_RE = re.compile(r"^epoch_(\d+)\.pt$")
FINAL_KEYS = ("model_name", "model_args", "state_dict", "spk2idx")
FINAL = "final.pt"  # the downstream model's file name in models/


@dataclasses.dataclass(frozen=True)
class EmbeddingsDir:
    """The files of one embedded set: <exp>/embeddings/<set>, or any extraction output dir."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    def xvector(self, part: Optional[int] = None) -> Tuple[Path, Path]:
        """(ark, scp): xvector.{ark,scp}, or extraction job ``part``'s xvector.<part>.{ark,scp}."""
        stem = "xvector" if part is None else f"xvector.{part}"
        return self.root / f"{stem}.ark", self.root / f"{stem}.scp"

    @property
    def xvector_scp(self) -> Path:
        return self.root / "xvector.scp"

    @property
    def spk_xvector(self) -> Tuple[Path, Path]:
        """(ark, scp) of the per-speaker mean embeddings."""
        return self.root / "spk_xvector.ark", self.root / "spk_xvector.scp"

    @property
    def spk_xvector_scp(self) -> Path:
        return self.root / "spk_xvector.scp"

    @property
    def utt2spk(self) -> Path:
        return self.root / "utt2spk"

    @property
    def extract_info(self) -> Path:
        """extract.yaml: the exp dir, data dir and ExtractConfig the embeddings came from."""
        return self.root / "extract.yaml"


def score_files(scores_dir: Union[str, Path], trials_name: str, backend: str) -> Tuple[Path, Path]:
    """(score file, result file) of one trial list and backend in a scores dir:
    <scores_dir>/<trials_name>.<backend>.{score,result}."""
    d = Path(scores_dir)
    return d / f"{trials_name}.{backend}.score", d / f"{trials_name}.{backend}.result"


@dataclasses.dataclass(frozen=True)
class ExpLayout:
    """Every path of an experiment dir (see the module docstring); nothing is read or created."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def log(self) -> Path:
        return self.root / "train.log"

    @property
    def history(self) -> Path:
        return self.root / "history.jsonl"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def final(self) -> Path:
        return self.models / FINAL

    def epoch(self, n: int) -> Path:
        """models/epoch_<n>.pt"""
        return self.models / f"epoch_{n}.pt"

    def embeddings(self, set_name: str) -> EmbeddingsDir:
        return EmbeddingsDir(self.root / "embeddings" / set_name)

    def xvector_scp(self, set_name: str) -> Path:
        return self.embeddings(set_name).xvector_scp

    @property
    def scores(self) -> Path:
        return self.root / "scores"

    def score_file(self, trials_name: str, backend: str) -> Path:
        return score_files(self.scores, trials_name, backend)[0]

    def result_file(self, trials_name: str, backend: str) -> Path:
        return score_files(self.scores, trials_name, backend)[1]

    def results(self, backend: str = "*") -> List[Path]:
        """scores/*.<backend>.result, sorted (default: every result file)."""
        pattern = "*.result" if backend == "*" else f"*.{backend}.result"
        return sorted(self.scores.glob(pattern))

    def results_by_trials(self, backend: str) -> Dict[str, Path]:
        """{trials name: scores/<trials>.<backend>.result}, sorted by name."""
        suffix = f".{backend}.result"
        return {p.name[:-len(suffix)]: p for p in self.results(backend)}

    @property
    def export(self) -> Path:
        return self.root / "export"

    def export_eval(self, runtime: str) -> "ExpLayout":
        """export_eval/<runtime> (fp32, int8, sherpa), whose embeddings() and scores are laid
        out like this exp dir's."""
        return ExpLayout(self.root / "export_eval" / runtime)

    def export_eval_sets(self) -> List[Tuple[str, str]]:
        """(runtime, set) of every export_eval/<runtime>/embeddings/<set> with an xvector.scp,
        sorted by path."""
        found = sorted(self.root.glob("export_eval/*/embeddings/*/xvector.scp"))
        return [(p.parent.parent.parent.name, p.parent.name) for p in found]


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
    from bccmt.features import FbankConfig
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
    from bccmt.config import ConfigError
    from bccmt.features import FbankConfig, FbankConfigError

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
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except Exception as e:  # noqa: BLE001 - corrupt/truncated file: name it
        raise CheckpointError(f"{path}: cannot load checkpoint ({e})") from e


def load_final(exp_dir, checkpoint: Optional[str] = None) -> Dict[str, Any]:
    """exp_dir/models/final.pt, or with ``checkpoint`` (a file name in models/, e.g. epoch_10.pt)
    that checkpoint's model and head in the final.pt layout (no averaging)."""
    import torch

    layout = ExpLayout(exp_dir)
    if checkpoint not in (None, FINAL):
        return _epoch_as_final(layout.models, checkpoint)
    path = layout.final
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
    from bccmt.config import ConfigError

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

    layout = ExpLayout(exp_dir)
    cfg = read_resolved(layout.config)
    final = load_final(exp_dir, checkpoint)
    model = build_model(final["model_name"], **final["model_args"])
    try:
        model.load_state_dict(final["state_dict"], strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{layout.models / (checkpoint or FINAL)} does not match model "
                              f"'{final['model_name']}': {e}") from e
    check_input_size(model, cfg.features, cfg.path)
    return model.to(device).eval(), cfg
