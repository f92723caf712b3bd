"""Training configuration: typed sections with defaults, YAML in, ``--set`` overrides, resolved YAML out.

A recipe config (egs/voxceleb/conf/*.yaml) is a mapping of the sections below, optionally on top
of a ``base:`` file (a path relative to the config; merged section by section, the config
winning); every key must be a field of its section (unknown keys are an error naming the file and
the valid keys), except
``model.args``, which is passed as-is to ``bccmt.models.build_model`` (that function rejects unknown
arguments). ``features`` is not written by hand: it is copied from ``<train-data>/fbank.yaml``.

Overrides: ``--set train.epochs=2 optim.lr=0.01 kd.layers="[[1,1],[3,3]]"``: the value is parsed as
YAML (numbers, booleans, null, lists), the key path must exist.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import yaml

from bccmt.kd.config import KDSection


class ConfigError(ValueError):
    """A bad training configuration; the message names the source and the key."""


@dataclasses.dataclass
class ModelSection:
    name: str = "bccmt_tiny"  # bccmt.models.build_model name
    args: Dict[str, Any] = dataclasses.field(default_factory=dict)  # build_model overrides


@dataclasses.dataclass
class HeadSection:
    name: str = "aam"  # bccmt.models.build_head name: aam (additive angular) | am (additive cosine)
    scale: float = 32.0  # logit scale s
    margin: float = 0.2  # final margin m
    margin_start_epoch: float = 0.0  # margin is 0 before this (fractional) epoch ...
    margin_end_epoch: float = 0.0  # ... and ramps linearly to `margin` at this epoch


@dataclasses.dataclass
class SpecAugmentSection:
    enabled: bool = False  # mask random frequency bands and time spans of each crop
    freq_masks: int = 2  # number of frequency masks
    freq_width: int = 8  # max width of a frequency mask (bins)
    time_masks: int = 2  # number of time masks
    time_width: int = 10  # max width of a time mask (frames)


@dataclasses.dataclass
class DataSection:
    crop_seconds: float = 2.0  # length of each random training crop
    short_policy: str = "repeat"  # utterances shorter than a crop: repeat (tile) | drop
    min_seconds: float = 0.5  # utterances shorter than this are dropped under either policy
    samples_per_epoch: Optional[int] = None  # crops per epoch (all ranks); null = one per utterance
    num_workers: int = 0  # DataLoader worker processes (0 = load in the training process)
    spec_augment: SpecAugmentSection = dataclasses.field(default_factory=SpecAugmentSection)


@dataclasses.dataclass
class OptimSection:
    name: str = "adamw"  # adamw | sgd
    lr: float = 0.002  # peak learning rate (reached after warm-up)
    final_lr: float = 0.00005  # learning rate at the end of the last epoch
    schedule: str = "exponential"  # decay after warm-up: exponential | cosine | constant
    warmup_epochs: float = 1.0  # linear warm-up from 0 over this many (fractional) epochs
    decay_epochs: Optional[float] = None  # hold the peak, decay over the last N epochs (null: all)
    weight_decay: float = 0.0001  # decoupled (adamw) or L2 (sgd)
    momentum: float = 0.9  # sgd only
    nesterov: bool = True  # sgd only
    grad_clip: float = 5.0  # max global gradient norm; 0 = no clipping


@dataclasses.dataclass
class TrainSection:
    epochs: int = 10  # number of epochs
    batch_size: int = 64  # global batch (split evenly across ranks)
    seed: int = 1234  # data order, crops, augmentation, init (the recipe passes run.sh --seed)
    log_every: int = 10  # log a line every N steps
    avg_last: int = 3  # final.pt = average of the last N epoch checkpoints
    keep_last: int = 5  # epoch checkpoints kept on disk (>= avg_last)
    keep_every: int = 0  # also keep every N-th epoch checkpoint (mid-training teachers); 0 = no
    amp: bool = True  # mixed precision (float16 autocast + grad scaling) on GPU; ignored on CPU
    num_threads: int = 0  # torch intra-op threads per process; 0 = all cores / local ranks


@dataclasses.dataclass
class TrainConfig:
    model: ModelSection = dataclasses.field(default_factory=ModelSection)
    head: HeadSection = dataclasses.field(default_factory=HeadSection)
    data: DataSection = dataclasses.field(default_factory=DataSection)
    optim: OptimSection = dataclasses.field(default_factory=OptimSection)
    train: TrainSection = dataclasses.field(default_factory=TrainSection)
    kd: KDSection = dataclasses.field(default_factory=KDSection)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


CHOICES = {
    ("head", "name"): ("aam", "am"),
    ("data", "short_policy"): ("repeat", "drop"),
    ("optim", "name"): ("adamw", "sgd"),
    ("optim", "schedule"): ("exponential", "cosine", "constant"),
    **{("kd", key): values for key, values in KDSection.CHOICES.items()},
}
FREE_FORM = {("model", "args")}  # mappings passed through unchecked


def _is_section(tp) -> bool:
    return dataclasses.is_dataclass(tp)


def _build(cls, d: Any, source: str, path: tuple):
    where = ".".join(path) or "top level"
    if not isinstance(d, dict):
        raise ConfigError(f"{source}: '{where}' must be a mapping, got {d!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(fields))
    if unknown:
        hint = " ('features' is copied from <train-data>/fbank.yaml)" if "features" in unknown else ""
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join('.'.join(path + (u,)) for u in unknown)} in "
            f"'{where}'; valid: {', '.join(fields)}{hint}"
        )
    obj = cls()
    hints = {f.name: f.type for f in dataclasses.fields(cls)}
    for name, value in d.items():
        default = getattr(obj, name)
        key = path + (name,)
        if dataclasses.is_dataclass(default):
            value = _build(type(default), value if value is not None else {}, source, key)
        elif key in FREE_FORM:
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: '{'.'.join(key)}' must be a mapping, got {value!r}")
        else:
            value = _check_scalar(value, default, hints[name], source, key)
        setattr(obj, name, value)
    return obj


def _check_scalar(value, default, hint, source, key):
    name = ".".join(key)
    optional = "Optional" in str(hint)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{source}: '{name}' must not be null")
    if key in CHOICES and value not in CHOICES[key]:
        raise ConfigError(f"{source}: '{name}' = {value!r}; valid: {', '.join(CHOICES[key])}")
    if "List" in str(hint):
        if not isinstance(value, list):
            raise ConfigError(f"{source}: '{name}' must be a list, got {value!r}")
        return value
    want = type(default) if default is not None else (str if "str" in str(hint) else int)
    if want is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: '{name}' must be true/false, got {value!r}")
    elif want in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: '{name}' must be a number, got {value!r}")
        if want is int and float(value) != int(value):
            raise ConfigError(f"{source}: '{name}' must be an integer, got {value!r}")
        value = want(value)
    elif not isinstance(value, want):
        raise ConfigError(f"{source}: '{name}' must be {want.__name__}, got {value!r}")
    return value


def parse_override(text: str) -> tuple:
    """'train.epochs=2' -> (('train', 'epochs'), 2); the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key.sub=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {text!r}: value is not valid YAML ({e})") from None
    return tuple(key.strip().split(".")), value


def apply_overrides(d: Dict[str, Any], overrides: List[str]) -> Dict[str, Any]:
    """Returns a copy of the raw mapping with ``key.sub=value`` overrides applied."""
    d = copy.deepcopy(d)
    for text in overrides:
        path, value = parse_override(text)
        node = d
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {text!r}: '{part}' is not a section")
        node[path[-1]] = value
    return d


def build_config(d: Optional[Dict[str, Any]], source: str = "config") -> TrainConfig:
    """Validates a raw mapping (all sections optional) into a TrainConfig."""
    cfg = _build(TrainConfig, d or {}, source, ())
    _check_ranges(cfg, source)
    return cfg


def merge(base: Dict[str, Any], over: Dict[str, Any]) -> Dict[str, Any]:
    """``over`` on top of ``base``: mappings merge key by key, anything else replaces."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(out.get(k), dict) and isinstance(v, dict) else v
    return out


def read_raw(path: Union[str, Path], _seen: tuple = ()) -> Dict[str, Any]:
    """A recipe YAML as a plain mapping, its ``base:`` file (relative to it) merged underneath.

    ``base`` lets per-model configs share one schedule file without hiding anything: the resolved
    config every run writes (<exp>/config.yaml) holds every key.
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            d = yaml.safe_load(f) or {}
    except FileNotFoundError:
        where = f" (the base of {_seen[-1]})" if _seen else ""
        raise ConfigError(f"{path}: no such config file{where}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(d, dict):
        raise ConfigError(f"{path}: expected a mapping of config sections")
    base = d.pop("base", None)
    if base is None:
        return d
    if not isinstance(base, str):
        raise ConfigError(f"{path}: 'base' must be a file name, got {base!r}")
    base_path = path.parent / base
    if base_path.resolve() in [Path(p).resolve() for p in (*_seen, path)]:
        raise ConfigError(f"{path}: 'base: {base}' makes a cycle")
    return merge(read_raw(base_path, (*_seen, path)), d)


def load_config(path: Union[str, Path], overrides: Optional[List[str]] = None) -> TrainConfig:
    """Reads a recipe YAML (with its ``base:`` chain), applies ``--set`` overrides, validates
    (unknown keys are errors)."""
    d = read_raw(path)
    source = str(path) + (" + --set overrides" if overrides else "")
    return build_config(apply_overrides(d, overrides or []), source)


def _check_ranges(cfg: TrainConfig, source: str) -> None:
    t, o, dt = cfg.train, cfg.optim, cfg.data
    checks = [
        (t.epochs >= 1, "train.epochs must be >= 1"),
        (t.batch_size >= 1, "train.batch_size must be >= 1"),
        (t.log_every >= 1, "train.log_every must be >= 1"),
        (1 <= t.avg_last <= t.keep_last, "need 1 <= train.avg_last <= train.keep_last"),
        (0 <= o.final_lr <= o.lr, "need 0 <= optim.final_lr <= optim.lr"),
        (o.decay_epochs is None or o.decay_epochs > 0, "optim.decay_epochs must be null or > 0"),
        (dt.crop_seconds > 0, "data.crop_seconds must be > 0"),
        (dt.samples_per_epoch is None or dt.samples_per_epoch >= t.batch_size,
         "data.samples_per_epoch must be null or >= train.batch_size"),
        (cfg.head.margin_end_epoch >= cfg.head.margin_start_epoch,
         "head.margin_end_epoch must be >= head.margin_start_epoch"),
        (t.keep_every >= 0, "train.keep_every must be >= 0"),
        (o.momentum >= 0, "optim.momentum must be >= 0"),
        (o.name != "sgd" or not o.nesterov or o.momentum > 0,
         "optim.nesterov: true needs optim.momentum > 0 (sgd)"),
        (min(dt.spec_augment.freq_masks, dt.spec_augment.freq_width, dt.spec_augment.time_masks,
             dt.spec_augment.time_width) >= 0, "data.spec_augment masks and widths must be >= 0"),
    ]
    for ok, msg in checks:
        if not ok:
            raise ConfigError(f"{source}: {msg}")
    for msg in cfg.kd.problems():
        raise ConfigError(f"{source}: {msg}")


def plain(x):
    """Tuples -> lists (recursively), so resolved model arguments round-trip through YAML."""
    if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    return x


def diff_configs(old: Dict, new: Dict, prefix: str = "") -> list:
    """['a.b: old -> new', ...] for the leaves that differ between two nested dicts."""
    keys = sorted(set(old) | set(new))
    out = []
    for k in keys:
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += diff_configs(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {a!r} -> {b!r}")
    return out
