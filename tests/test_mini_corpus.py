"""Tests of the offline mini-corpus maker (bccmt.corpus) on a tiny config."""

from __future__ import annotations

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
from bccmt.corpus.layout import make_plan
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
