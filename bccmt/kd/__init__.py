"""Knowledge distillation of self-attention maps (and optionally embeddings) from a frozen teacher."""

from bccmt.kd.attention_loss import attention_kd_loss, embedding_kd_loss, match_heads

__all__ = ["attention_kd_loss", "embedding_kd_loss", "match_heads"]
