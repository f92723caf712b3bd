"""Speaker embedding models: BC-CMT (revised temporal-attention and conventional 2-D attention
variants, Tiny/Small/Base), ECAPA-TDNN C=512, and the AAM/AM margin heads.

API: build_model(name, **overrides) -> nn.Module; list_models(); build_head(name, ...).
See bccmt.models.bccmt_net for shapes and the attention-map KD layer mapping.
"""

from bccmt.models.heads import build_head
from bccmt.models.registry import build_model, list_models, model_args

__all__ = ["build_model", "list_models", "model_args", "build_head"]
