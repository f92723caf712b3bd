"""Thin command-line entry points: python -m bccmt.bin.<name>."""
