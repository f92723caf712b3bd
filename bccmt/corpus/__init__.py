"""Offline mini corpus: eSpeak NG speakers in a VoxCeleb/MUSAN/RIRS-like layout (see maker)."""
