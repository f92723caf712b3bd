"""bccmt: BC-CMT speaker embeddings and self-attention-map knowledge distillation."""

__version__ = "0.1.0"
