"""The corpus plan: speakers, session ("video") ids, utterance paths and the trial list, all derived
from the seed alone (never from the number of jobs).

Layout under the output root (VoxCeleb-like):
  voxceleb2/dev/wav/<spk>/<video>/<nnnnn>.wav   training speakers id00001...
  voxceleb1/wav/<spk>/<video>/<nnnnn>.wav       test speakers id10001...
  voxceleb1/veri_test2.txt                      "<1|0> <spk/video/n.wav> <spk/video/n.wav>" (O)
  voxceleb1/list_test_all2.txt                  same format, all test speakers (E; when trials_e)
  voxceleb1/list_test_hard2.txt                 same format, non-targets within one language and
                                                gender (H; when trials_h)
"""

from __future__ import annotations

import logging
import string
from dataclasses import dataclass
from typing import Dict, List, Set, Tuple

import numpy as np

from bccmt.corpus.config import CorpusConfig, SetSize
from bccmt.corpus.speakers import Speaker, draw_speakers, rng_for

log = logging.getLogger(__name__)
VIDEO_ALPHABET = string.ascii_letters + string.digits + "-_"
TRAIN_WAV = "voxceleb2/dev/wav"
TEST_WAV = "voxceleb1/wav"
TRIALS = "voxceleb1/veri_test2.txt"
TRIALS_E = "voxceleb1/list_test_all2.txt"
TRIALS_H = "voxceleb1/list_test_hard2.txt"
# Non-target pairs are drawn by rejection sampling when they are few next to the possible pairs;
# up to this many possible pairs (or when more than half of them are wanted) every possible pair is
# listed and a sample is taken from the list instead.
ENUMERATE_PAIRS = 1_000_000
Trials = List[Tuple[int, str, str]]  # (1 target | 0 non-target, enroll.wav, test.wav)


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


def _target_pairs(test: List[SpeakerPlan]) -> np.ndarray:
    """(T, 2) utterance indices (into the concatenated ``p.utts``) of every same-speaker pair
    i < j, across videos when the speaker has more than one."""
    pairs = []
    offset = 0
    for p in test:
        m = len(p.utts)
        a, b = np.triu_indices(m, 1)
        videos = np.array([u.split("/")[1] for u in p.utts])
        if len(set(videos.tolist())) > 1:
            keep = videos[a] != videos[b]
            a, b = a[keep], b[keep]
        pairs.append(np.stack([a, b], axis=1) + offset)
        offset += m
    return np.concatenate(pairs).astype(np.int64) if pairs else np.zeros((0, 2), np.int64)


def _nontarget_pairs(spk: np.ndarray, group: np.ndarray, k: int, rng: np.random.Generator,
                     name: str) -> np.ndarray:
    """(k, 2) distinct unordered pairs of utterances of different speakers of one group, uniform
    over all such pairs. ``spk``, ``group``: (U,) speaker and group index of each utterance."""
    n_utt = len(spk)
    order = np.lexsort((spk, group))  # utterances grouped by group, then by speaker
    groups, starts, sizes = np.unique(group[order], return_index=True, return_counts=True)
    spk_sizes = np.bincount(spk, minlength=int(spk.max()) + 1)
    spk_group = np.zeros(len(spk_sizes), np.int64)
    spk_group[spk] = np.searchsorted(groups, group)
    same_spk = np.bincount(spk_group, weights=spk_sizes.astype(np.float64) ** 2,
                           minlength=len(groups)).astype(np.int64)
    counts = (sizes.astype(np.int64) ** 2 - same_spk) // 2  # different-speaker pairs per group
    total = int(counts.sum())
    if k > total:
        raise ValueError(f"trial list {name}: {k} non-target trials wanted but the test speakers "
                         f"give only {total} distinct pairs; ask for fewer trials or more test "
                         f"utterances")
    if total <= ENUMERATE_PAIRS or 2 * k > total:
        parts = []
        for start, size in zip(starts, sizes):
            a, b = np.triu_indices(int(size), 1)
            a, b = order[start + a], order[start + b]
            keep = spk[a] != spk[b]
            parts.append(np.stack([a[keep], b[keep]], axis=1))
        every = np.concatenate(parts)
        return every[np.sort(rng.choice(len(every), k, replace=False))]
    cum = np.cumsum(counts)
    keys = np.zeros(0, np.int64)  # min * U + max of the pairs taken, in draw order
    taken = np.zeros((0, 2), np.int64)
    while len(taken) < k:
        draw = int(1.1 * (k - len(taken))) + 64
        g = np.searchsorted(cum, rng.random(draw) * total, side="right")
        a = order[starts[g] + rng.integers(0, sizes[g])]
        b = order[starts[g] + rng.integers(0, sizes[g])]
        ok = spk[a] != spk[b]
        a, b = a[ok], b[ok]
        new = np.minimum(a, b) * n_utt + np.maximum(a, b)
        _, first = np.unique(np.concatenate([keys, new]), return_index=True)
        first = np.sort(first[first >= len(keys)]) - len(keys)  # unseen keys, first draw of each
        first = first[: k - len(taken)]
        keys = np.concatenate([keys, new[first]])
        taken = np.concatenate([taken, np.stack([a[first], b[first]], axis=1)])
    return taken


def exact_trials(test: List[SpeakerPlan], num_trials: int, seed: int, name: str,
                 same_group: bool = False) -> Trials:
    """Exactly ``num_trials`` trials [(label, enroll.wav, test.wav)] over ``test``, sorted.

    Targets: distinct same-speaker pairs (from different videos when the speaker has more than
    one), as many as the speakers give up to half the list. Non-targets fill the rest: pairs of
    utterances of two different speakers, uniform over all such pairs; with ``same_group`` only
    between speakers of the same language and gender (as VoxCeleb1-H: same nationality and
    gender). No pair occurs twice (in either order) and no utterance is paired with itself; the
    enroll/test order of a pair is random. With a few utterances per speaker the list is mostly
    non-targets (15 utterances in 3 videos give 75 cross-video pairs per speaker): it has the size
    of its VoxCeleb counterpart, not its balance. The randomness depends on (seed, name) only.
    ValueError when the speakers do not give enough distinct non-target pairs.
    Vectorised: a list of VoxCeleb1-E size (580k trials over 18,765 utterances) takes seconds.
    """
    rng = rng_for(seed, "trials", name)
    utts = np.array([f"{u}.wav" for p in test for u in p.utts])
    spk = np.repeat(np.arange(len(test)), [len(p.utts) for p in test])
    if same_group:
        keys = sorted({(p.speaker.language, p.speaker.gender) for p in test})
        spk_group = np.array([keys.index((p.speaker.language, p.speaker.gender)) for p in test])
    else:
        spk_group = np.zeros(len(test), np.int64)
    every_target = _target_pairs(test)
    n_target = min(num_trials // 2, len(every_target))
    targets = every_target[np.sort(rng.choice(len(every_target), n_target, replace=False))]
    nontargets = _nontarget_pairs(spk, spk_group[spk], num_trials - n_target, rng, name)
    pairs = np.concatenate([targets, nontargets])
    flip = rng.random(len(pairs)) < 0.5
    pairs[flip] = pairs[flip][:, ::-1]
    labels = np.repeat([1, 0], [n_target, len(nontargets)])
    rank = np.empty(len(utts), np.int64)
    rank[np.argsort(utts)] = np.arange(len(utts))  # byte order of the names (ASCII)
    idx = np.argsort(rank[pairs[:, 0]] * len(utts) + rank[pairs[:, 1]], kind="stable")
    log.info("trial list %s: %d trials over %d speakers, %d targets (%d same-speaker pairs "
             "available)", name, len(idx), len(test), n_target, len(every_target))
    enroll, tst = utts[pairs[idx, 0]].tolist(), utts[pairs[idx, 1]].tolist()
    return list(zip(labels[idx].tolist(), enroll, tst))


def make_trial_lists(cfg: CorpusConfig, test: List[SpeakerPlan]) -> Dict[str, Trials]:
    """{path relative to the root: trials} of every list ``cfg`` asks for: veri_test2.txt (O)
    always, over the first ``o_speakers`` test speakers; list_test_all2.txt (E) and
    list_test_hard2.txt (H) over all test speakers when ``trials_e`` / ``trials_h`` are set."""
    o_test = test if cfg.o_speakers is None else test[: cfg.o_speakers]
    if cfg.exact_trials:
        lists = {TRIALS: exact_trials(o_test, cfg.num_trials, cfg.seed, "O")}
    else:
        lists = {TRIALS: make_trials(o_test, cfg.num_trials, cfg.seed)}
    if cfg.trials_e:
        lists[TRIALS_E] = exact_trials(test, cfg.trials_e, cfg.seed, "E")
    if cfg.trials_h:
        lists[TRIALS_H] = exact_trials(test, cfg.trials_h, cfg.seed, "H", same_group=True)
    return lists
