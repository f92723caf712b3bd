"""Stage 0 and the data-dir contract: Kaldi data dirs, VoxCeleb preparation."""
