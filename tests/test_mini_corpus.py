"""Tests of the offline mini-corpus maker (bccmt.corpus) on a tiny config."""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from bccmt.bin import make_mini_corpus
from bccmt.corpus.config import ConfigError, config_from_dict, load_config
from bccmt.corpus.espeak import DETERMINISTIC_VARIANTS, available_languages, available_variants
from bccmt.corpus import layout
from bccmt.corpus.layout import exact_trials, make_plan, make_trial_lists
from bccmt.corpus.maker import CorpusExistsError, make_corpus
from bccmt.corpus.variant_check import check_variants

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "egs" / "voxceleb" / "conf"
TINY = {
    "seed": 7,
    "train": {"speakers": 4, "videos": 2, "utts_per_video": 2},
    "test": {"speakers": 3, "videos": 2, "utts_per_video": 2},
    "utt_dur": [1.0, 2.0],
    "num_trials": 12,
    "trials_e": 16,
    "extras": {"noise_files": 1, "music_files": 1, "speech_speakers": 1, "file_dur": [1.0, 1.5],
               "rooms_per_size": 1, "rirs_per_room": 2},
}
UTT_RE = re.compile(r"^id\d{5}/[A-Za-z0-9_-]{11}/\d{5}\.wav$")


def _files(root: Path) -> dict:
    """relative path -> bytes, every file except the .done statistics (they hold timings)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != ".done"}


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("mini") / "corpus"
    stats = make_corpus(config_from_dict(TINY), str(root), nj=1)
    return root, stats


def test_same_seed_identical_bytes_for_any_nj(tiny_corpus, tmp_path):
    root, _ = tiny_corpus
    other = tmp_path / "nj2"
    make_corpus(config_from_dict(TINY), str(other), nj=2)
    a, b = _files(root), _files(other)
    assert sorted(a) == sorted(b)
    assert [k for k in a if a[k] != b[k]] == []


def test_cli_seed_override_changes_audio(tiny_corpus, tmp_path):
    root, _ = tiny_corpus
    conf = tmp_path / "tiny.yaml"
    conf.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "s8"
    assert make_mini_corpus.main(["--config", str(conf), "--out", str(out), "--nj", "2",
                                  "--seed", "8"]) == 0
    assert json.loads((out / ".mini_corpus.json").read_text())["config"]["seed"] == 8
    ours = sorted((root / "voxceleb2/dev/wav/id00001").rglob("*.wav"))
    theirs = sorted((out / "voxceleb2/dev/wav/id00001").rglob("*.wav"))
    assert len(ours) == len(theirs) == 4
    assert ours[0].read_bytes() != theirs[0].read_bytes()


def test_layout_audio_format_and_durations(tiny_corpus):
    root, stats = tiny_corpus
    train = sorted((root / "voxceleb2/dev/wav").rglob("*.wav"))
    test = sorted((root / "voxceleb1/wav").rglob("*.wav"))
    assert len(train) == 4 * 2 * 2 and len(test) == 3 * 2 * 2
    assert stats["train_utts"] == 16 and stats["test_utts"] == 12
    for p in train + test:
        rel = str(p.relative_to(p.parents[2]))
        assert UTT_RE.match(rel), rel
        info = sf.info(str(p))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert 1.0 <= info.duration <= 2.0, (rel, info.duration)
        x, _ = sf.read(str(p), dtype="int16")
        assert np.abs(x).max() > 1000  # not silent
    assert {p.parts[-3] for p in train} == {f"id0000{i}" for i in range(1, 5)}
    assert {p.parts[-3] for p in test} == {f"id1000{i}" for i in range(1, 4)}
    vids = {(p.parts[-3], p.parts[-2]) for p in train}
    assert len(vids) == 8  # 2 distinct videos per speaker
    # utterance numbers run on across a speaker's videos, as in VoxCeleb
    assert sorted(p.stem for p in train if p.parts[-3] == "id00001") == [
        "00001", "00002", "00003", "00004"]


def test_musan_and_rirs_layout(tiny_corpus):
    root, _ = tiny_corpus
    for kind in ("noise", "music", "speech"):
        files = list((root / "musan" / kind / "synthetic").glob(f"{kind}-synthetic-*.wav"))
        assert len(files) == 1, kind
        assert sf.info(str(files[0])).samplerate == 16000
    for size in ("smallroom", "mediumroom", "largeroom"):
        d = root / "rirs_noises/simulated_rirs" / size / "Room001"
        assert sorted(p.name for p in d.glob("*.wav")) == ["Room001-00001.wav",
                                                            "Room001-00002.wav"]
    h, sr = sf.read(str(root / "rirs_noises/simulated_rirs/largeroom/Room001/Room001-00001.wav"))
    energy = np.cumsum(h[::-1] ** 2)[::-1]  # Schroeder decay: the late part is much quieter
    assert sr == 16000 and energy[len(h) // 2] < 0.05 * energy[0]


def test_trial_file_format_and_speakers(tiny_corpus):
    root, stats = tiny_corpus
    lines = (root / "voxceleb1/veri_test2.txt").read_text().splitlines()
    assert len(lines) == stats["trials"] and 0 < len(lines) <= 12
    test_spks = {p.name for p in (root / "voxceleb1/wav").iterdir()}
    labels = []
    for line in lines:
        label, a, b = line.split(" ")
        assert label in ("0", "1") and UTT_RE.match(a) and UTT_RE.match(b), line
        assert (root / "voxceleb1/wav" / a).is_file() and (root / "voxceleb1/wav" / b).is_file()
        sa, sb = a.split("/")[0], b.split("/")[0]
        assert sa in test_spks and sb in test_spks
        assert (label == "1") == (sa == sb), line
        if label == "1":
            assert a.split("/")[1] != b.split("/")[1], f"target within one video: {line}"
        labels.append(int(label))
    assert sum(labels) * 2 == len(labels)  # balanced
    assert lines == sorted(lines, key=lambda s: s.split(" ")[1:])
    assert len(set(lines)) == len(lines)


def test_e_list_written_and_counted(tiny_corpus):
    root, stats = tiny_corpus
    lines = (root / "voxceleb1/list_test_all2.txt").read_text().splitlines()
    assert len(lines) == stats["trials_e"] == 16 and stats["target_trials_e"] == 8
    assert all(re.match(r"^[01] \S+\.wav \S+\.wav$", line) for line in lines)
    assert not (root / "voxceleb1/list_test_hard2.txt").exists() and "trials_h" not in stats
    marker = json.loads((root / ".mini_corpus.json").read_text())["config"]
    assert marker["trials_e"] == 16 and "trials_h" not in marker  # defaults: not in the identity


def test_speakers_disjoint_and_unique():
    cfg = load_config(str(CONF / "mini_corpus.yaml"))
    plan = make_plan(cfg)
    train = {p.speaker.spk_id for p in plan.train}
    test = {p.speaker.spk_id for p in plan.test}
    extra = {s.spk_id for s in plan.extra_speakers}
    assert (len(train), len(test)) == (cfg.train.speakers, cfg.test.speakers)
    assert not train & test and not extra & (train | test)
    speakers = [p.speaker for p in plan.train + plan.test] + plan.extra_speakers
    combos = [s.combo() for s in speakers]
    assert len(set(combos)) == len(combos)
    assert {s.gender for s in speakers} == {"m", "f"}
    assert len({s.language for s in speakers}) >= 5
    assert make_plan(cfg).test[0].utts == plan.test[0].utts  # plan depends on the seed only


def test_grid_too_small_is_an_error():
    tiny_space = {"languages": ["en"], "pitch_male": [50, 50], "pitch_female": [50, 50],
                  "pitch_range": [50, 50], "rate": [170, 170], "warp_male": [1, 1],
                  "warp_female": [1, 1], "tilt": [0, 0]}
    cfg = config_from_dict(dict(TINY, speakers=tiny_space, train={"speakers": 200}))
    with pytest.raises(ValueError, match="unique speaker"):
        make_plan(cfg)


def test_allow_listed_variants_and_languages_exist():
    variants = set(available_variants())
    used = DETERMINISTIC_VARIANTS["male"] + DETERMINISTIC_VARIANTS["female"]
    assert set(used) <= variants
    assert not {"f2", "f3", "f5", "whisper"} & set(used)
    cfg = load_config(str(CONF / "mini_corpus.yaml"))
    assert set(cfg.speakers.languages) <= set(available_languages())


def test_allow_listed_variants_are_deterministic():
    used = DETERMINISTIC_VARIANTS["male"] + DETERMINISTIC_VARIANTS["female"]
    result = check_variants(used)
    assert [v for v, ok in result.items() if not ok] == []


def _synth_digest(args):
    from bccmt.corpus.espeak import EspeakEngine, EspeakError

    variant, pitch = args
    eng = EspeakEngine()
    try:
        eng.set_voice("en", variant, pitch, 50, 175)
    except EspeakError as e:
        return str(e)
    x = eng.synth("Testing one two three.")
    return len(x), int(np.abs(x).max())


def test_engine_validates_variant_and_applies_pitch():
    with mp.get_context("fork").Pool(2, maxtasksperchild=1) as pool:
        bad, low, high = pool.map(_synth_digest, [("nosuch", 50), ("m3", 10), ("m3", 90)])
    assert "unknown eSpeak variant 'nosuch'" in bad
    assert low[0] > 10000 and high[0] > 10000 and low != high


def test_rerun_is_noop_and_other_config_refused(tiny_corpus):
    root, stats = tiny_corpus
    wav = next((root / "voxceleb1/wav").rglob("*.wav"))
    mtime = wav.stat().st_mtime_ns
    again = make_corpus(config_from_dict(TINY), str(root), nj=2)
    assert again == stats and wav.stat().st_mtime_ns == mtime
    with pytest.raises(CorpusExistsError, match="another config"):
        make_corpus(config_from_dict(dict(TINY, seed=99)), str(root), nj=1)


def test_foreign_tree_refused(tmp_path):
    (tmp_path / "voxceleb1").mkdir()
    with pytest.raises(CorpusExistsError, match="not made by this maker"):
        make_corpus(config_from_dict(TINY), str(tmp_path), nj=1)


def test_config_errors_and_shipped_configs(tmp_path):
    for name in ("mini_corpus.yaml", "mini_corpus_quick.yaml"):
        load_config(str(CONF / name))
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 1\nchannel: {snr: [1, 2]}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.channel: unknown key\(s\) \['snr'\]"):
        load_config(str(bad))
    bad.write_text("num_trials: 7\n")
    with pytest.raises(ConfigError, match="even"):
        load_config(str(bad))
    assert make_mini_corpus.main(["--config", str(bad), "--out", str(tmp_path / "o")]) == 1


def test_noise_per_utterance_redraws_only_the_noise(tmp_path):
    from bccmt.corpus.channel import draw_channel, redraw_noise
    from bccmt.corpus.config import ChannelSpace
    from bccmt.corpus.speakers import rng_for

    space = ChannelSpace(p_noise=1.0, eq_bands=[2, 2], p_reverb=1.0)
    ch = draw_channel(rng_for(1, "channel", "s", "v"), space)
    a = redraw_noise(ch, rng_for(1, "noise", "u1"), space)
    b = redraw_noise(ch, rng_for(1, "noise", "u2"), space)
    again = redraw_noise(ch, rng_for(1, "noise", "u1"), space)
    assert (a.snr_db, a.noise_beta) == (again.snr_db, again.noise_beta)  # reproducible
    assert (a.snr_db, a.noise_beta) != (b.snr_db, b.noise_beta)
    for c in (a, b):  # the session's band, EQ, reverberation and level are kept
        assert (c.band, c.eq, c.rt60, c.peak_dbfs) == (ch.band, ch.eq, ch.rt60, ch.peak_dbfs)
        assert c.rir is ch.rir and space.snr_db[0] <= c.snr_db <= space.snr_db[1]
    bad = tmp_path / "bad.yaml"
    bad.write_text("channel: {noise_per: video}\n")
    with pytest.raises(ConfigError, match="noise_per must be 'session' or 'utterance'"):
        load_config(str(bad))


def test_colour_jitter_varies_the_session_noise_per_utterance():
    from bccmt.corpus.channel import draw_channel, jitter_noise
    from bccmt.corpus.config import ChannelSpace
    from bccmt.corpus.speakers import rng_for

    space = ChannelSpace(p_noise=1.0, noise_color=[0.0, 2.0], color_jitter=0.3)
    ch = draw_channel(rng_for(1, "channel", "s", "v"), space)
    a = jitter_noise(ch, rng_for(1, "noise", "u1"), space)
    b = jitter_noise(ch, rng_for(1, "noise", "u2"), space)
    assert a.noise_beta == jitter_noise(ch, rng_for(1, "noise", "u1"), space).noise_beta
    assert a.noise_beta != b.noise_beta
    for c in (a, b):  # the session's SNR and channel are kept; the colour stays near the session's
        assert abs(c.noise_beta - ch.noise_beta) <= 0.3 and 0.0 <= c.noise_beta <= 2.0
        assert (c.snr_db, c.band, c.eq, c.peak_dbfs) == (ch.snr_db, ch.band, ch.eq, ch.peak_dbfs)
    still = ChannelSpace(p_noise=1.0)  # no jitter: the channel is returned unchanged
    assert jitter_noise(ch, rng_for(1, "noise", "u1"), still) is ch


# The trial lists of the shipped mini corpora before the E/H lists existed: pinned so that the
# default run's corpus (and its digest) stays the same (sha256 of the veri_test2.txt text).
PINNED = {
    "mini_corpus.yaml": ("c4c892e429f57f91", 6000, 3000,
                         "94e42f9155f950cf5cf24915f779e6dd911c88a09a39529e6ab01cce6ef6968a"),
    "mini_corpus_quick.yaml": ("c594de2aaea4e8f5", 140, 70,
                               "b9728e153e48edf6a484cd08e3bf50cceb5560f8066c1ab13d26cb403fced0d6"),
}


def _text(trials) -> str:
    return "".join(f"{label} {a} {b}\n" for label, a, b in trials)


@pytest.mark.parametrize("name", sorted(PINNED))
def test_shipped_mini_corpora_unchanged(name):
    cfg = load_config(str(CONF / name))
    digest, n, n_target, sha = PINNED[name]
    assert cfg.digest() == digest
    assert "trials_e" not in cfg.identity() and "o_speakers" not in cfg.identity()
    lists = make_trial_lists(cfg, make_plan(cfg).test)
    assert list(lists) == [layout.TRIALS]
    trials = lists[layout.TRIALS]
    assert (len(trials), sum(t[0] for t in trials)) == (n, n_target)
    assert hashlib.sha256(_text(trials).encode()).hexdigest() == sha
    assert config_from_dict({"trials_e": 10}).digest() != config_from_dict({}).digest()


# 12 test speakers, 2 videos x 3 utterances: 9 cross-video target pairs per speaker (108), in 4
# language x gender groups
SMALL = {"seed": 3, "test": {"speakers": 12, "videos": 2, "utts_per_video": 3},
         "speakers": {"languages": ["en", "de"]}}


def _check_list(trials, n, plan_test, hard=False):
    spk = {p.speaker.spk_id: p.speaker for p in plan_test}
    assert len(trials) == n
    assert trials == sorted(trials, key=lambda t: (t[1], t[2]))
    pairs = [frozenset(t[1:]) for t in trials]
    assert len(set(pairs)) == n  # no pair twice, in either order
    for label, a, b in trials:
        assert a != b and UTT_RE.match(a) and UTT_RE.match(b)
        sa, sb = spk[a.split("/")[0]], spk[b.split("/")[0]]
        assert label == int(sa.spk_id == sb.spk_id), (label, a, b)
        if label:
            assert a.split("/")[1] != b.split("/")[1], f"target within one video: {a} {b}"
        elif hard:
            assert (sa.language, sa.gender) == (sb.language, sb.gender), (a, b)
    return sum(t[0] for t in trials)


@pytest.mark.parametrize("sampled", [False, True])
def test_exact_trial_lists(monkeypatch, sampled):
    if sampled:  # rejection sampling instead of listing every pair (what the full-size lists use)
        monkeypatch.setattr(layout, "ENUMERATE_PAIRS", 0)
    cfg = config_from_dict(dict(SMALL, exact_trials=True, num_trials=41, o_speakers=4,
                                trials_e=301, trials_h=250))
    plan = make_plan(cfg)
    lists = make_trial_lists(cfg, plan.test)
    assert list(lists) == [layout.TRIALS, layout.TRIALS_E, layout.TRIALS_H]
    o_spks = {p.speaker.spk_id for p in plan.test[:4]}
    assert {t[i].split("/")[0] for t in lists[layout.TRIALS] for i in (1, 2)} == o_spks
    assert _check_list(lists[layout.TRIALS], 41, plan.test[:4]) == 20  # 36 available: up to half
    assert _check_list(lists[layout.TRIALS_E], 301, plan.test) == 108  # all there are
    assert _check_list(lists[layout.TRIALS_H], 250, plan.test, hard=True) == 108
    assert {t[1].split("/")[0] for t in lists[layout.TRIALS_E]} == {p.speaker.spk_id
                                                                     for p in plan.test}
    # deterministic for a seed, and the seed matters
    assert make_trial_lists(cfg, make_plan(cfg).test) == lists
    other = config_from_dict(dict(cfg.to_dict(), seed=4))
    assert make_trial_lists(other, plan.test)[layout.TRIALS_E] != lists[layout.TRIALS_E]


def test_exact_trials_too_few_pairs_is_an_error():
    plan = make_plan(config_from_dict(SMALL))
    # 72 utterances: 2376 pairs of different speakers, 108 targets
    assert len(exact_trials(plan.test, 2484, 1, "E")) == 2484
    with pytest.raises(ValueError, match="trial list E: 2377 non-target trials wanted"):
        exact_trials(plan.test, 2485, 1, "E")


def test_o_speakers_with_the_balanced_sampler():
    cfg = config_from_dict(dict(SMALL, num_trials=40, o_speakers=3))
    plan = make_plan(cfg)
    trials = make_trial_lists(cfg, plan.test)[layout.TRIALS]
    assert _check_list(trials, 40, plan.test[:3]) == 20
    assert {t[1].split("/")[0] for t in trials} <= {p.speaker.spk_id for p in plan.test[:3]}


def test_trial_list_config_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    for text, match in (("num_trials: 37611\n", "odd sizes need exact_trials: true"),
                        ("trials_e: 1\n", "trials_e must be 0"),
                        ("trials_h: -2\n", "trials_h must be 0"),
                        ("o_speakers: 9\n", r"o_speakers must be null \(all\) or 2..test.speakers"),
                        ("exact_trials: 1\n", "exact_trials must be true or false")):
        bad.write_text(text)
        with pytest.raises(ConfigError, match=match):
            load_config(str(bad))
    bad.write_text("exact_trials: true\nnum_trials: 37611\n")
    assert load_config(str(bad)).num_trials == 37611


def test_scale_corpus_config():
    cfg = load_config(str(CONF / "scale_corpus.yaml"))
    assert (cfg.train.speakers, cfg.test.speakers) == (5994, 1251)
    assert cfg.train.speakers * cfg.train.videos * cfg.train.utts_per_video >= 100_000
    assert cfg.test.speakers * cfg.test.videos * cfg.test.utts_per_video == 18_765
    assert (cfg.num_trials, cfg.o_speakers, cfg.trials_e, cfg.trials_h) == (37611, 40, 579818,
                                                                            550894)
    assert cfg.exact_trials and cfg.utt_dur[1] <= 2.0
