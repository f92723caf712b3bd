"""Stage 1 features: the fbank config and computation (fbank), and the dump job (job).

The package re-exports the fbank module: the one feature path of every stage.
"""

from bccmt.features.fbank import (
    WAVE_SCALE, WINDOW_TYPES, FbankConfigError, FbankConfig, load_fbank_config, utt_seed,
    compute_fbank, apply_cmn, PURPOSES, for_purpose, silence_floor)

__all__ = [
    "WAVE_SCALE", "WINDOW_TYPES", "FbankConfigError", "FbankConfig", "load_fbank_config",
    "utt_seed", "compute_fbank", "apply_cmn",
    "PURPOSES", "for_purpose", "silence_floor"]
