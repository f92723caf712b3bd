"""Mini-corpus configuration: nested dataclasses loaded from YAML (unknown keys are errors).

Every field has a default and a one-line meaning. Ranges are ``[low, high]`` lists; draws are
uniform unless said otherwise. ``nj`` is not part of the config: the output does not depend on it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import yaml

# Bump when a change to the generator changes its output for an unchanged config: an existing
# corpus made by the older generator is then refused instead of silently mixed.
MAKER_VERSION = 1


@dataclass
class SetSize:
    speakers: int = 20  # number of speakers in the set
    videos: int = 2  # sessions ("videos") per speaker
    utts_per_video: int = 3  # utterances per session


@dataclass
class SpeakerSpace:
    """Where speaker parameters are drawn from; the *_step fields quantise them (the grid on which
    combinations must be unique; coarser steps = more distinct speakers)."""

    languages: List[str] = field(default_factory=lambda: ["en", "de", "fr", "es", "it", "nl", "pl",
                                                          "pt", "sv"])
    female_fraction: float = 0.5  # share of speakers drawn with female variants/pitch/warp
    pitch_male: List[float] = field(default_factory=lambda: [20, 55])  # eSpeak pitch 0-100
    pitch_female: List[float] = field(default_factory=lambda: [40, 80])
    pitch_step: float = 5
    pitch_range: List[float] = field(default_factory=lambda: [20, 90])  # eSpeak range 0-100
    pitch_range_step: float = 10
    rate: List[float] = field(default_factory=lambda: [140, 210])  # words per minute
    rate_step: float = 10
    warp_male: List[float] = field(default_factory=lambda: [0.88, 1.02])  # formant/F0 warp factor
    warp_female: List[float] = field(default_factory=lambda: [1.0, 1.14])
    warp_step: float = 0.02
    tilt: List[float] = field(default_factory=lambda: [-0.6, 0.6])  # first-order spectral tilt
    tilt_step: float = 0.2


@dataclass
class ChannelSpace:
    """Per-session channel distribution (identical for train and test, drawn independently of the
    speaker)."""

    p_telephone: float = 0.15  # 300-3400 Hz band-pass
    p_bandlimit: float = 0.3  # random high-pass / low-pass otherwise
    lowpass_hz: List[float] = field(default_factory=lambda: [3500, 7500])
    highpass_hz: List[float] = field(default_factory=lambda: [50, 300])
    eq_bands: List[int] = field(default_factory=lambda: [0, 3])  # number of peaking EQs, inclusive
    eq_gain_db: float = 8.0  # peaking gain drawn in [-g, g]
    p_reverb: float = 0.5
    rt60: List[float] = field(default_factory=lambda: [0.15, 0.7])  # seconds
    p_noise: float = 0.9
    snr_db: List[float] = field(default_factory=lambda: [5, 30])  # session SNR
    snr_jitter_db: float = 2.0  # per-utterance deviation from the session SNR
    noise_color: List[float] = field(default_factory=lambda: [0.0, 2.0])  # 1/f^beta exponent
    color_jitter: float = 0.0  # noise_per session: per-utterance deviation of the colour exponent
    noise_per: str = "session"  # "session": one noise per video; "utterance": drawn per utterance
    peak_dbfs: List[float] = field(default_factory=lambda: [-20, -1])  # output gain (peak level)


@dataclass
class ExtrasConfig:
    """MUSAN-like and RIRS_NOISES-like material for the augmentation step."""

    noise_files: int = 20
    music_files: int = 10
    speech_speakers: int = 10  # extra eSpeak speakers, never train/test speakers
    file_dur: List[float] = field(default_factory=lambda: [5.0, 10.0])  # seconds
    rooms_per_size: int = 3
    rirs_per_room: int = 5


@dataclass
class CorpusConfig:
    seed: int = 1234
    train: SetSize = field(default_factory=SetSize)
    test: SetSize = field(default_factory=lambda: SetSize(speakers=8))
    utt_dur: List[float] = field(default_factory=lambda: [2.0, 8.0])  # seconds, per utterance
    num_trials: int = 2000  # veri_test2.txt (O) lines, half targets, half non-targets
    o_speakers: Optional[int] = None  # test speakers in the O list (the first ones); None: all
    trials_e: int = 0  # list_test_all2.txt (E, all test speakers) lines; 0: no E list
    trials_h: int = 0  # list_test_hard2.txt (H, same language and gender) lines; 0: no H list
    # How veri_test2.txt is drawn. False: the balanced sampler of the mini corpora (the list comes
    # out shorter than num_trials when pairs run out); True: exactly num_trials lines, targets up
    # to half (bccmt.corpus.layout.exact_trials; the E and H lists are always drawn that way)
    exact_trials: bool = False
    speakers: SpeakerSpace = field(default_factory=SpeakerSpace)
    channel: ChannelSpace = field(default_factory=ChannelSpace)
    extras: ExtrasConfig = field(default_factory=ExtrasConfig)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def identity(self) -> Dict[str, Any]:
        """The resolved config without the later-added fields that hold their defaults: what a
        corpus made before those fields existed was identified by (its digest stays the same)."""
        d = self.to_dict()
        for name, default in LATER_FIELDS.items():
            if d[name] == default:
                del d[name]
        return d

    def digest(self) -> str:
        """Hash of the resolved config (``identity``) and MAKER_VERSION (identifies a generated
        corpus)."""
        blob = json.dumps([MAKER_VERSION, self.identity()], sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


# Fields added after corpora were made with MAKER_VERSION 1, with the default that reproduces the
# older output; left out of the digest while they hold it (see CorpusConfig.identity).
LATER_FIELDS: Dict[str, Any] = {"o_speakers": None, "trials_e": 0, "trials_h": 0,
                                "exact_trials": False}


class ConfigError(ValueError):
    """A bad mini-corpus config; the message names the file and key."""


def _build(cls, data: Any, where: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid: {sorted(fields)}")
    kwargs = {}
    for name, value in data.items():
        sub = fields[name].type
        sub_cls = globals().get(sub) if isinstance(sub, str) else sub
        if dataclasses.is_dataclass(sub_cls):
            kwargs[name] = _build(sub_cls, value, f"{where}.{name}")
        else:
            kwargs[name] = value
    return cls(**kwargs)


def check_config(cfg: CorpusConfig, where: str = "config") -> None:
    """Raises ConfigError on values the maker cannot use."""
    lo, hi = cfg.utt_dur
    if not 0.5 <= lo <= hi:
        raise ConfigError(f"{where}: utt_dur must be 0.5 <= low <= high, got {cfg.utt_dur}")
    for name in ("train", "test"):
        s = getattr(cfg, name)
        if s.speakers < 2 or s.videos < 1 or s.utts_per_video < 1:
            raise ConfigError(f"{where}: {name} needs >= 2 speakers, >= 1 video, >= 1 utterance")
    if cfg.test.videos * cfg.test.utts_per_video < 2:
        raise ConfigError(f"{where}: test speakers need >= 2 utterances for target trials")
    if not isinstance(cfg.exact_trials, bool):
        raise ConfigError(f"{where}: exact_trials must be true or false, got {cfg.exact_trials!r}")
    if cfg.exact_trials:
        if not isinstance(cfg.num_trials, int) or cfg.num_trials < 2:
            raise ConfigError(f"{where}: num_trials must be an integer >= 2, got {cfg.num_trials}")
    elif not isinstance(cfg.num_trials, int) or cfg.num_trials < 2 or cfg.num_trials % 2:
        raise ConfigError(f"{where}: num_trials must be even and >= 2 (odd sizes need "
                          f"exact_trials: true), got {cfg.num_trials}")
    for name in ("trials_e", "trials_h"):
        n = getattr(cfg, name)
        if not isinstance(n, int) or isinstance(n, bool) or n < 0 or n == 1:
            raise ConfigError(f"{where}: {name} must be 0 (no list) or an integer >= 2, got {n!r}")
    o = cfg.o_speakers
    if o is not None and (not isinstance(o, int) or isinstance(o, bool)
                          or not 2 <= o <= cfg.test.speakers):
        raise ConfigError(f"{where}: o_speakers must be null (all) or 2..test.speakers "
                          f"({cfg.test.speakers}), got {o!r}")
    if cfg.channel.noise_per not in ("session", "utterance"):
        raise ConfigError(f"{where}: channel.noise_per must be 'session' or 'utterance', got "
                          f"{cfg.channel.noise_per!r}")
    if cfg.train.speakers > 9999 or cfg.test.speakers > 9999:
        raise ConfigError(f"{where}: at most 9999 speakers per set (ids id0NNNN / id1NNNN)")


def load_config(path: str) -> CorpusConfig:
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    cfg = _build(CorpusConfig, data, str(path))
    check_config(cfg, str(path))
    return cfg


def config_from_dict(data: Dict[str, Any]) -> CorpusConfig:
    cfg = _build(CorpusConfig, data, "config")
    check_config(cfg)
    return cfg
