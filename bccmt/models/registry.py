"""Model registry: name -> embedding model. The names are a stable API used by configs/checkpoints.

build_model("bccmt_tiny") etc.; keyword overrides replace fields of the model's config dataclass
(BCCMTConfig or ECAPAConfig); unknown names and unknown override keys raise ValueError listing the
valid ones.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Tuple

from torch import nn

from bccmt.models.bccmt_net import BCCMT, BCCMTConfig
from bccmt.models.ecapa import ECAPAConfig, ECAPATDNN

_SIZES = {
    "tiny": dict(channels=(16, 32, 48, 64), blocks=(2, 2, 4, 2), ffn_ratio=2.0, embedding_dim=128,
                 pool_bottleneck=80),
    "small": dict(channels=(32, 48, 72, 96), blocks=(2, 2, 4, 2), ffn_ratio=3.0,
                  embedding_dim=192),
    "base": dict(channels=(32, 64, 96, 128), blocks=(2, 2, 6, 2), ffn_ratio=4.0,
                 embedding_dim=192),
}

# name -> (model class, config class, default arguments)
MODELS: Dict[str, Tuple[Callable, type, dict]] = {}
for _size, _args in _SIZES.items():
    MODELS[f"bccmt_{_size}"] = (BCCMT, BCCMTConfig, dict(_args, attention="temporal"))
    MODELS[f"bccmt_{_size}_2dsa"] = (BCCMT, BCCMTConfig, dict(_args, attention="2d"))
MODELS["ecapa_tdnn_c512"] = (ECAPATDNN, ECAPAConfig, dict(channels=512, embedding_dim=192))


def list_models() -> List[str]:
    """All registered model names, sorted."""
    return sorted(MODELS)


def model_args(name: str, **overrides) -> dict:
    """The full resolved argument dict of a model (defaults of its size + overrides)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(list_models())}")
    _, cfg_cls, defaults = MODELS[name]
    valid = cfg_cls.field_names()
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(f"unknown argument(s) {', '.join(unknown)} for model {name!r}; "
                         f"valid arguments: {', '.join(valid)}")
    return dict(defaults, **overrides)


def build_model(name: str, **overrides) -> nn.Module:
    """Builds the embedding model ``name`` (see list_models()) with config overrides."""
    args = model_args(name, **overrides)
    model_cls, cfg_cls, _ = MODELS[name]
    return model_cls(cfg_cls(**args))
