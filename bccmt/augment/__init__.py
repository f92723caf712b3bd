"""Stage 1 augmentation: signal mixing and plans (mix), the sources on disk (sources), and the
job that writes augmented copies of a data dir (job). The package re-exports mix and sources.
"""

from bccmt.augment.mix import (
    RATE, TYPES, MUSAN_KIND, MUSAN_LAYOUT, RIRS_LAYOUT, PEAK_LIMIT, AugmentError, AugmentConfig,
    Source, Applied, rng_for, power, fit_length, scale_to_snr, add_noise, add_foreground,
    mix_babble, fft_convolve, reverberate, avoid_clipping, achieved_snr, make_plan, apply_plan,
    select_subset)
from bccmt.augment.sources import (
    list_musan, list_rirs, list_sources)

__all__ = [
    "RATE", "TYPES", "MUSAN_KIND", "MUSAN_LAYOUT", "RIRS_LAYOUT", "PEAK_LIMIT", "AugmentError",
    "AugmentConfig", "Source", "Applied", "rng_for", "power", "fit_length", "scale_to_snr",
    "add_noise", "add_foreground", "mix_babble", "fft_convolve", "reverberate",
    "avoid_clipping", "achieved_snr", "make_plan", "apply_plan", "select_subset", "list_musan",
    "list_rirs", "list_sources"]
