"""Log-Mel filterbank features and cepstral mean normalisation: the one feature path.

Training crops, embedding extraction and stage-1 feature dumping all go through ``compute_fbank``
and ``apply_cmn`` here, so the settings cannot drift between them.

Waveform scale: ``bccmt.audio.read_audio`` returns float32 in [-1, 1]; ``compute_fbank`` multiplies
by 32768 (the int16 scale Kaldi's fbank expects, and what kaldi-native-fbank assumes since it does
not rescale). Nothing else rescales.

Dither: kaldi-native-fbank's own dither draws from an unseeded generator, so features would differ
run to run. We therefore switch its dither off and add the Gaussian dither ourselves (std ``dither``
in int16 units, per sample, before framing) from a per-utterance seed: features are reproducible.
(Kaldi draws noise per frame, so overlapping samples get independent noise there; the statistics
per frame are the same.)
"""

from __future__ import annotations

import dataclasses
import zlib
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

WAVE_SCALE = 32768.0
WINDOW_TYPES = ("povey", "hamming", "hanning", "rectangular", "blackman", "sine")


class FbankConfigError(ValueError):
    """A bad feature configuration; the message names the source and the key."""


@dataclasses.dataclass
class FbankConfig:
    """Kaldi-compatible 80-dim log-Mel fbank settings (kaldi-native-fbank underneath)."""

    sample_rate: int = 16000  # Hz; input audio must have this rate (no resampling)
    num_mel_bins: int = 80  # number of triangular Mel filters = feature dimension
    frame_length_ms: float = 25.0  # analysis window length (400 samples at 16 kHz)
    frame_shift_ms: float = 10.0  # hop between frames (160 samples at 16 kHz)
    dither: float = 0.0  # std of Gaussian noise added, int16 units (1.0 for training sets, 0 eval)
    window_type: str = "povey"  # povey|hamming|hanning|rectangular|blackman|sine
    low_freq: float = 20.0  # Hz, lower edge of the lowest Mel filter
    high_freq: float = -400.0  # Hz, upper edge; <= 0 means Nyquist + high_freq (-400: 7600 Hz)
    snip_edges: bool = False  # False: T = round(N / shift), edge frames mirrored (Kaldi VoxCeleb)
    energy_floor: float = 0.0  # floor on the log energy (only matters with use_energy)
    remove_dc_offset: bool = True  # subtract each frame's mean before windowing
    preemph: float = 0.97  # pre-emphasis coefficient

    def __post_init__(self) -> None:
        self._validate("FbankConfig")

    def _validate(self, source: str) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            want = {"int": int, "float": float, "bool": bool, "str": str}[
                f.type if isinstance(f.type, str) else f.type.__name__
            ]
            if want in (int, float):
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise FbankConfigError(f"{source}: '{f.name}' must be a number, got {v!r}")
                if want is int and float(v) != int(v):
                    raise FbankConfigError(f"{source}: '{f.name}' must be an integer, got {v!r}")
                object.__setattr__(self, f.name, want(v))
            elif not isinstance(v, want):
                raise FbankConfigError(f"{source}: '{f.name}' must be {want.__name__}, got {v!r}")
        if self.sample_rate <= 0 or self.num_mel_bins <= 0:
            raise FbankConfigError(f"{source}: sample_rate and num_mel_bins must be positive")
        if self.frame_length_ms <= 0 or self.frame_shift_ms <= 0:
            raise FbankConfigError(f"{source}: frame_length_ms and frame_shift_ms must be positive")
        if self.dither < 0:
            raise FbankConfigError(f"{source}: dither must be >= 0, got {self.dither}")
        if self.window_type not in WINDOW_TYPES:
            raise FbankConfigError(
                f"{source}: window_type '{self.window_type}' unknown; valid: {', '.join(WINDOW_TYPES)}"
            )
        nyquist = self.sample_rate / 2
        high = self.high_freq if self.high_freq > 0 else nyquist + self.high_freq
        if not 0 <= self.low_freq < high <= nyquist:
            raise FbankConfigError(
                f"{source}: need 0 <= low_freq < high_freq <= Nyquist, got low_freq={self.low_freq}"
                f" high_freq={self.high_freq} (sample_rate {self.sample_rate})"
            )

    @property
    def frame_length(self) -> int:
        """Window length in samples."""
        return int(self.sample_rate * self.frame_length_ms / 1000)

    @property
    def frame_shift(self) -> int:
        """Frame shift in samples."""
        return int(self.sample_rate * self.frame_shift_ms / 1000)

    def num_frames(self, num_samples: int) -> int:
        """Number of frames compute_fbank returns for ``num_samples`` samples (Kaldi's rule)."""
        if self.snip_edges:
            if num_samples < self.frame_length:
                return 0
            return 1 + (num_samples - self.frame_length) // self.frame_shift
        return int((num_samples + self.frame_shift // 2) // self.frame_shift)

    def to_dict(self) -> Dict[str, Any]:
        """Plain dict of all fields (YAML-ready; what is written to data/<set>/fbank.yaml)."""
        return dataclasses.asdict(self)

    def differences(self, other: "FbankConfig", ignore: Sequence[str] = (),
                    names: Tuple[str, str] = ("a", "b")) -> List[str]:
        """["key: <names[0]> value vs <names[1]> value", ...] for the fields that differ, except
        those in ``ignore``: the one comparison of feature configs (data vs model, student vs
        teacher). Unknown names in ``ignore`` are an error, so a renamed field cannot slip by."""
        fields = [f.name for f in dataclasses.fields(self)]
        bad = sorted(set(ignore) - set(fields))
        if bad:
            raise ValueError(f"unknown FbankConfig field(s) to ignore: {', '.join(bad)}")
        return [f"{k}: {names[0]} {getattr(self, k)!r} vs {names[1]} {getattr(other, k)!r}"
                for k in fields if k not in ignore and getattr(self, k) != getattr(other, k)]

    @classmethod
    def from_dict(cls, d: Optional[Dict[str, Any]], source: str = "fbank config") -> "FbankConfig":
        """Builds a config from a mapping; unknown keys are an error that names them."""
        d = dict(d or {})
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise FbankConfigError(
                f"{source}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(names)}"
            )
        cfg = cls.__new__(cls)
        for name in names:
            setattr(cfg, name, d.get(name, getattr(cls, name)))
        cfg._validate(source)
        return cfg


def load_fbank_config(path: Union[str, Path]) -> FbankConfig:
    """Reads a YAML mapping of FbankConfig fields (missing keys take the defaults)."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            d = yaml.safe_load(f)
    except FileNotFoundError:
        raise FbankConfigError(f"{path}: no such file") from None
    except yaml.YAMLError as e:
        raise FbankConfigError(f"{path}: not valid YAML ({e})") from None
    if d is not None and not isinstance(d, dict):
        raise FbankConfigError(f"{path}: expected a mapping of fbank settings, got {type(d).__name__}")
    return FbankConfig.from_dict(d, source=str(path))


def utt_seed(utt_id: str) -> int:
    """A stable per-utterance dither seed (same id -> same seed on every machine and run)."""
    return zlib.crc32(utt_id.encode("utf-8"))


def _knf_options(cfg: FbankConfig):
    import kaldi_native_fbank as knf

    opts = knf.FbankOptions()
    fo = opts.frame_opts
    fo.samp_freq = float(cfg.sample_rate)
    fo.frame_length_ms = float(cfg.frame_length_ms)
    fo.frame_shift_ms = float(cfg.frame_shift_ms)
    fo.dither = 0.0  # applied by us, seeded (see module docstring)
    fo.window_type = cfg.window_type
    fo.snip_edges = cfg.snip_edges
    fo.remove_dc_offset = cfg.remove_dc_offset
    fo.preemph_coeff = float(cfg.preemph)
    opts.mel_opts.num_bins = cfg.num_mel_bins  # knf's default is 23
    opts.mel_opts.low_freq = float(cfg.low_freq)
    opts.mel_opts.high_freq = float(cfg.high_freq)
    opts.energy_floor = float(cfg.energy_floor)
    opts.use_energy = False
    return opts


_OPTS_CACHE: Dict[tuple, Any] = {}


def compute_fbank(
    wave: np.ndarray, cfg: Optional[FbankConfig] = None, seed: Optional[int] = None
) -> np.ndarray:
    """Log-Mel fbank of one utterance.

    wave: (N,) float waveform in [-1, 1] at cfg.sample_rate (as read_audio returns it).
    seed: dither seed (use ``utt_seed(utt_id)``); None derives one from the samples, so the same
      audio always gives the same features. Ignored when cfg.dither == 0.
    Returns feats: (T, num_mel_bins) float32 log-Mel energies, T = (N + 80) // 160 at the
    defaults (``FbankConfig.num_frames``). Raises ValueError if the wave is not 1-D or too short to give a frame.
    """
    import kaldi_native_fbank as knf

    cfg = cfg or FbankConfig()
    wave = np.asarray(wave)
    if wave.ndim != 1:
        raise ValueError(f"compute_fbank expects a mono (N,) waveform, got shape {wave.shape}")
    n_frames = cfg.num_frames(len(wave))
    if n_frames <= 0:
        raise ValueError(
            f"waveform of {len(wave)} samples gives no fbank frame (needs "
            f"{cfg.frame_length if cfg.snip_edges else (cfg.frame_shift + 1) // 2} samples)"
        )
    x = wave.astype(np.float32) * np.float32(WAVE_SCALE)
    if cfg.dither > 0:
        if seed is None:
            seed = zlib.crc32(np.ascontiguousarray(wave, dtype=np.float32).tobytes())
        rng = np.random.default_rng(seed)
        x += np.float32(cfg.dither) * rng.standard_normal(len(x), dtype=np.float32)
    key = tuple(sorted(cfg.to_dict().items()))
    opts = _OPTS_CACHE.get(key)
    if opts is None:
        opts = _OPTS_CACHE[key] = _knf_options(cfg)
    fb = knf.OnlineFbank(opts)
    fb.accept_waveform(float(cfg.sample_rate), x.tolist())  # a list beats an ndarray here (~1.2x)
    fb.input_finished()
    t = fb.num_frames_ready
    assert t == n_frames, f"kaldi-native-fbank gave {t} frames, expected {n_frames}"
    return np.stack([fb.get_frame(i) for i in range(t)]).astype(np.float32, copy=False)


# ------------------------------------------------- extraction: dither 0, and a floor for silence
FLOOR_PERCENTILE = 1.0  # of the log-Mel values pure training dither gives, per bin
FLOOR_SECONDS = 30.0  # of seeded Gaussian dither the floor is measured on
FLOOR_SEED = 20260101
_FLOOR_CACHE: Dict[tuple, np.ndarray] = {}


PURPOSES = ("training", "extraction")


def for_purpose(cfg: FbankConfig, purpose: str) -> FbankConfig:
    """The one rule for dither: ``cfg`` as features for ``purpose`` are computed.

    training    the config's own dither (training sets: seeded noise, see the module docstring)
    extraction  dither 0: evaluation sets, the backend subset, stage 4, the export and the
                ``bccmt`` command, so an utterance always gets the same embedding (and a client
                such as sherpa-onnx, whose fbank has no dither, computes the same features)
    stage 1 (``compute_fbank --purpose``, local/make_fbank.sh), stage 4 and the export all ask
    here, so the decision cannot drift between them."""
    if purpose not in PURPOSES:
        raise FbankConfigError(f"unknown feature purpose '{purpose}'; valid: {', '.join(PURPOSES)}")
    return cfg if purpose == "training" else dataclasses.replace(cfg, dither=0.0)


def silence_floor(training: FbankConfig) -> Optional[np.ndarray]:
    """(F,) float32 log-Mel floor for extraction, or None when training used no dither.

    Training features are dithered, so no training frame is quieter than the dither: exact-zero
    (digital) silence gives log-Mel values there that training never saw (the float floor,
    about -15.9), and such utterances got embeddings of up to 10x the usual norm. Extraction
    therefore floors each bin at the 1st percentile of what pure training dither gives in it
    (measured once per config on seeded Gaussian noise): silent frames land inside the training
    range, and frames with any signal above the dither are left exactly as they are."""
    if training.dither <= 0:
        return None
    key = tuple(sorted(training.to_dict().items()))
    if key not in _FLOOR_CACHE:
        rng = np.random.default_rng(FLOOR_SEED)
        n = int(FLOOR_SECONDS * training.sample_rate)
        noise = rng.standard_normal(n) * (training.dither / WAVE_SCALE)  # dither, in [-1, 1] units
        feats = compute_fbank(noise, for_purpose(training, "extraction"))
        _FLOOR_CACHE[key] = np.percentile(feats, FLOOR_PERCENTILE, axis=0).astype(np.float32)
    return _FLOOR_CACHE[key]


def apply_cmn(feats):
    """Cepstral mean normalisation: subtracts the mean over time (axis -2).

    feats: numpy (T, F) / (..., T, F) or torch (B, T, F) / (T, F). Returns the same type, dtype and
    shape. Variance is left alone (CMN, not CMVN), as in Kaldi/WeSpeaker speaker recipes.
    """
    if feats.shape[-2] == 0:
        raise ValueError(f"apply_cmn: no frames (shape {tuple(feats.shape)})")
    if isinstance(feats, np.ndarray):
        return (feats - feats.mean(axis=-2, keepdims=True)).astype(feats.dtype, copy=False)
    return feats - feats.mean(dim=-2, keepdim=True)
