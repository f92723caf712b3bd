"""eSpeak NG driven through ctypes (library and data bundled by the PyPI package ``espeakng-loader``).

One engine per process: libespeak-ng keeps global state, so parallel synthesis uses processes, never
threads. The engine runs in synchronous mode; the synth callback copies every buffer it is handed
(the library reuses it) and the callback object is kept referenced for the engine's lifetime.

Voice variants: an unknown variant name silently falls back to the plain voice, so names are
validated against the ``voices/!v`` folder of the data path. Some variants add random noise
("breath" / whisper settings) seeded differently on every run; only variants on
``DETERMINISTIC_VARIANTS`` are used by the corpus maker (see the note there on how it was checked).
Successive syntheses within one process also differ slightly (internal state carries over), so the
maker synthesizes each speaker in a fresh process, always in the same order.
"""

from __future__ import annotations

import ctypes
import os
from math import gcd
from typing import List, Optional

import numpy as np
from scipy.signal import resample_poly

ESPEAK_RATE = 22050  # what eSpeak NG synthesizes at
AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_DONT_EXIT = 0x8000
CHARS_UTF8 = 1
POS_CHARACTER = 1
PARAM_RATE, PARAM_VOLUME, PARAM_PITCH, PARAM_RANGE = 1, 2, 3, 4
EE_OK = 0

# Variants used for speakers, by the gender their file declares (or their pitch suggests).
# How they were checked: `python -m bccmt.corpus.variant_check` synthesizes one sentence per
# variant in two fresh processes and compares the int16 samples (eSpeak NG 1.51-era data bundled
# with espeakng-loader); tests/test_mini_corpus.py re-checks this list (slow test).
# Non-deterministic there, hence excluded: Alicia, Demonic, f2, f3, f5, sandro, victor, whisper,
# whisperf (random "breath"/aspiration noise with a per-run seed). Also left out although
# deterministic: robotic/novelty voices (robosoft*, UniRobot, anikaRobot, croak, Tweaky, fast,
# grandma/grandpa, klatt*, Reed/caleb (breath), zac, Mr serious).
DETERMINISTIC_VARIANTS = {
    "male": ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "Andy", "Denis", "Diogo", "Henrique",
             "Hugo", "Lee", "Marco", "Mario", "Michael", "antonio", "david", "edward", "gustave",
             "iven", "john", "marcelo", "michel", "miguel", "norbert", "pablo", "paul", "pedro",
             "quincy", "robert", "travis"],
    "female": ["f1", "f4", "Andrea", "Annie", "anika", "aunty", "belinda", "linda", "shelby",
               "steph"],
}


class EspeakError(RuntimeError):
    """eSpeak NG could not be loaded, initialised, or refused a call."""


def data_path() -> str:
    import espeakng_loader

    return str(espeakng_loader.get_data_path())


def available_variants(path: Optional[str] = None) -> List[str]:
    """Names of the variant files in ``<data>/voices/!v`` (the only names eSpeak accepts)."""
    vdir = os.path.join(path or data_path(), "voices", "!v")
    return sorted(os.listdir(vdir))


def available_languages(path: Optional[str] = None) -> List[str]:
    """Language voice names (file names under ``<data>/lang``), e.g. ``en``, ``de``, ``pt-BR``."""
    out = []
    for _root, _dirs, files in os.walk(os.path.join(path or data_path(), "lang")):
        out.extend(files)
    return sorted(out)


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.c_void_p)


class EspeakEngine:
    """The process-wide eSpeak NG engine. Create at most one per process (in a worker)."""

    _created_in_pid: Optional[int] = None

    def __init__(self) -> None:
        if EspeakEngine._created_in_pid == os.getpid():
            raise EspeakError("one EspeakEngine per process (libespeak-ng state is global)")
        import espeakng_loader

        self._lib = ctypes.cdll.LoadLibrary(str(espeakng_loader.get_library_path()))
        self._data = data_path()
        self._variants = set(available_variants(self._data))
        self._languages = set(available_languages(self._data))
        lib = self._lib
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_Synth.restype = ctypes.c_int
        rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, self._data.encode(),
                                     INITIALIZE_DONT_EXIT)
        if rate != ESPEAK_RATE:
            raise EspeakError(f"espeak_Initialize returned {rate} (expected {ESPEAK_RATE} Hz); "
                              f"data path {self._data}")
        self._chunks: List[np.ndarray] = []
        self._callback = _CALLBACK(self._on_audio)  # keep referenced while the engine lives
        lib.espeak_SetSynthCallback(self._callback)
        EspeakEngine._created_in_pid = os.getpid()

    def _on_audio(self, wav, numsamples, _events) -> int:
        if numsamples > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
        return 0  # continue synthesis

    def set_voice(self, language: str, variant: str, pitch: int, pitch_range: int, rate: int) -> None:
        """Selects ``language+variant`` and sets pitch (0-100), range (0-100), rate (words/min)."""
        if language not in self._languages:
            raise EspeakError(f"unknown eSpeak language voice '{language}'")
        if variant not in self._variants:
            raise EspeakError(f"unknown eSpeak variant '{variant}' (not in voices/!v)")
        if self._lib.espeak_SetVoiceByName(f"{language}+{variant}".encode()) != EE_OK:
            raise EspeakError(f"espeak_SetVoiceByName('{language}+{variant}') failed")
        for param, value in ((PARAM_RATE, rate), (PARAM_PITCH, pitch), (PARAM_RANGE, pitch_range),
                             (PARAM_VOLUME, 100)):
            if self._lib.espeak_SetParameter(param, int(value), 0) != EE_OK:
                raise EspeakError(f"espeak_SetParameter({param}, {value}) failed")

    def synth(self, text: str) -> np.ndarray:
        """Synthesizes ``text`` with the current voice -> int16 samples at 22050 Hz."""
        self._chunks = []
        buf = ctypes.create_string_buffer(text.encode("utf-8"))
        err = self._lib.espeak_Synth(buf, len(buf), 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
        if err != EE_OK:
            raise EspeakError(f"espeak_Synth failed ({err}) for text {text[:40]!r}")
        if not self._chunks:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(self._chunks)


def to_16k(x: np.ndarray, warp: float = 1.0) -> np.ndarray:
    """22050 Hz int16/float -> 16 kHz float32, peak-normalised to 0.9.

    ``warp`` > 1 reads the signal as if recorded at 22050*warp Hz before resampling: F0 and all
    formants scale by ``warp`` and the duration by 1/warp (a resampling-based vocal-tract change).
    The warp is quantised to steps of 1/441 so that the polyphase filter stays short.
    """
    down = int(round(441 * warp))
    up = 320
    g = gcd(up, down)
    y = resample_poly(x.astype(np.float64), up // g, down // g)
    peak = np.max(np.abs(y)) if y.size else 0.0
    if peak > 0:
        y = y * (0.9 / peak)
    return y.astype(np.float32)
