"""The corpus plan: speakers, session ("video") ids, utterance paths and the trial list, all derived
from the seed alone (never from the number of jobs).

Layout under the output root (VoxCeleb-like):
  voxceleb2/dev/wav/<spk>/<video>/<nnnnn>.wav   training speakers id00001...
  voxceleb1/wav/<spk>/<video>/<nnnnn>.wav       test speakers id10001...
  voxceleb1/veri_test2.txt                      "<1|0> <spk/video/n.wav> <spk/video/n.wav>"
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Dict, List, Set, Tuple

from bccmt.corpus.config import CorpusConfig, SetSize
from bccmt.corpus.speakers import Speaker, draw_speakers, rng_for

VIDEO_ALPHABET = string.ascii_letters + string.digits + "-_"
TRAIN_WAV = "voxceleb2/dev/wav"
TEST_WAV = "voxceleb1/wav"
TRIALS = "voxceleb1/veri_test2.txt"


@dataclass
class SpeakerPlan:
    speaker: Speaker
    wav_dir: str  # relative to the output root: TRAIN_WAV or TEST_WAV
    utts: List[str]  # "<spk>/<video>/<nnnnn>", in generation order


@dataclass
class CorpusPlan:
    train: List[SpeakerPlan]
    test: List[SpeakerPlan]
    extra_speakers: List[Speaker]  # voices of musan/speech, disjoint from train and test


def video_ids(seed: int, spk_id: str, n: int) -> List[str]:
    """``n`` distinct 11-character YouTube-like ids for one speaker's sessions."""
    rng = rng_for(seed, "videos", spk_id)
    out: List[str] = []
    while len(out) < n:
        vid = "".join(VIDEO_ALPHABET[int(i)] for i in rng.integers(0, len(VIDEO_ALPHABET), 11))
        if vid not in out:
            out.append(vid)
    return out


def _speaker_plans(speakers: List[Speaker], size: SetSize, wav_dir: str,
                   seed: int) -> List[SpeakerPlan]:
    plans = []
    for spk in speakers:
        utts = []
        seg = 0
        for vid in video_ids(seed, spk.spk_id, size.videos):
            for _ in range(size.utts_per_video):
                seg += 1  # numbering runs on across a speaker's videos, as in VoxCeleb
                utts.append(f"{spk.spk_id}/{vid}/{seg:05d}")
        plans.append(SpeakerPlan(spk, wav_dir, utts))
    return plans


def make_plan(cfg: CorpusConfig) -> CorpusPlan:
    taken: Set[Tuple] = set()
    train_ids = [f"id{i:05d}" for i in range(1, cfg.train.speakers + 1)]
    test_ids = [f"id{10000 + i:05d}" for i in range(1, cfg.test.speakers + 1)]
    extra_ids = [f"extra{i:04d}" for i in range(1, cfg.extras.speech_speakers + 1)]
    train = draw_speakers(train_ids, cfg.speakers, cfg.seed, "train", taken)
    test = draw_speakers(test_ids, cfg.speakers, cfg.seed, "test", taken)
    extra = draw_speakers(extra_ids, cfg.speakers, cfg.seed, "extra", taken)
    return CorpusPlan(train=_speaker_plans(train, cfg.train, TRAIN_WAV, cfg.seed),
                      test=_speaker_plans(test, cfg.test, TEST_WAV, cfg.seed),
                      extra_speakers=extra)


def make_trials(test: List[SpeakerPlan], num_trials: int, seed: int) -> List[Tuple[int, str, str]]:
    """Balanced trials [(label, enroll.wav, test.wav)] over the test speakers, sorted.

    Targets pair two utterances of one speaker from different videos when the speaker has more
    than one; non-targets pair utterances of two different speakers. No pair occurs twice (the
    list is shorter than ``num_trials`` only when there are not enough distinct pairs)."""
    rng = rng_for(seed, "trials")
    by_spk: Dict[str, List[str]] = {p.speaker.spk_id: p.utts for p in test}
    spks = sorted(by_spk)
    want = num_trials // 2
    seen: Set[Tuple[str, str]] = set()
    targets: List[Tuple[int, str, str]] = []
    nontargets: List[Tuple[int, str, str]] = []
    for _ in range(want * 20):
        if len(targets) >= want:
            break
        utts = by_spk[spks[int(rng.integers(len(spks)))]]
        a, b = (utts[int(i)] for i in rng.choice(len(utts), 2, replace=False))
        multi_video = len({u.split("/")[1] for u in utts}) > 1
        if (multi_video and a.split("/")[1] == b.split("/")[1]) or (a, b) in seen:
            continue
        seen.update({(a, b), (b, a)})
        targets.append((1, a, b))
    for _ in range(want * 20):
        if len(nontargets) >= want:
            break
        s1, s2 = rng.choice(len(spks), 2, replace=False)
        a = by_spk[spks[int(s1)]][int(rng.integers(len(by_spk[spks[int(s1)]])))]
        b = by_spk[spks[int(s2)]][int(rng.integers(len(by_spk[spks[int(s2)]])))]
        if (a, b) in seen:
            continue
        seen.update({(a, b), (b, a)})
        nontargets.append((0, a, b))
    n = min(len(targets), len(nontargets))  # keep the list balanced
    trials = [(lab, f"{a}.wav", f"{b}.wav") for lab, a, b in targets[:n] + nontargets[:n]]
    return sorted(trials, key=lambda t: (t[1], t[2]))
