"""Stage 0: VoxCeleb layouts -> data dirs; official trial lists -> Kaldi trials; overlap check."""

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bccmt.io.tables import read_kv, read_lists, read_trials
from bccmt.data.voxceleb import (
    PrepError,
    check_speaker_overlap,
    convert_trials,
    prepare_voxceleb,
)

REPO = Path(__file__).resolve().parents[1]


def make_wav(path: Path, seconds: float, seed: int = 0):
    path.parent.mkdir(parents=True, exist_ok=True)
    x = 0.1 * np.random.default_rng(seed).standard_normal(int(seconds * 16000))
    sf.write(str(path), x.astype(np.float32), 16000, subtype="PCM_16")


def write_m4a(path: Path, seconds: float):
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    x = (0.1 * np.random.default_rng(1).standard_normal(int(seconds * 16000))).astype(np.float32)
    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("aac", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(x[None, :], format="flt", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        for p in list(s.encode(frame)) + list(s.encode(None)):
            c.mux(p)


VOX1 = ["id10001/vidA/00001", "id10001/vidA/00002", "id10001/vidB/00001",
        "id10002/vidC/00001", "id10002/vidC/00003", "id10003/vidD/00001"]
VOX2 = ["id00001/v1/00001", "id00001/v2/00001", "id00002/v3/00001"]
OFFICIAL_O2 = """1 id10001/vidA/00001.wav id10001/vidB/00001.wav
0 id10001/vidA/00001.wav id10002/vidC/00001.wav
1 id10002/vidC/00001.wav id10002/vidC/00003.wav
0 id10003/vidD/00001.wav id10001/vidA/00002.wav
"""


@pytest.fixture
def corpus(tmp_path):
    vox1, vox2 = tmp_path / "voxceleb1", tmp_path / "voxceleb2"
    for i, u in enumerate(VOX1):
        make_wav(vox1 / "wav" / f"{u}.wav", 0.5 + 0.25 * i, seed=i)
    for i, u in enumerate(VOX2):
        make_wav(vox2 / "dev" / "wav" / f"{u}.wav", 1.0 + i, seed=10 + i)
    (vox1 / "wav" / "README.txt").write_text("not audio\n")
    (vox1 / "veri_test2.txt").write_text(OFFICIAL_O2)
    (vox1 / "list_test_hard2.txt").write_text(OFFICIAL_O2.splitlines()[0] + "\n")
    return vox1, vox2


def test_prepare_data_dirs_and_trials(corpus, tmp_path):
    vox1, vox2 = corpus
    data = tmp_path / "data"
    prepare_voxceleb(data, vox1_root=vox1, vox2_root=vox2)
    for name, utts, root in (("vox1", VOX1, vox1 / "wav"), ("vox2_dev", VOX2, vox2 / "dev" / "wav")):
        d = data / name
        wav = read_kv(d / "wav.scp")
        assert list(wav) == sorted(utts)
        assert all(wav[u] == os.path.abspath(root / f"{u}.wav") for u in utts)
        assert read_kv(d / "utt2spk") == {u: u.split("/")[0] for u in sorted(utts)}
        spk2utt = read_lists(d / "spk2utt")
        assert spk2utt == {s: sorted(u for u in utts if u.startswith(s)) for s in sorted(spk2utt)}
    dur = read_kv(data / "vox1" / "utt2dur")
    assert float(dur["id10001/vidA/00001"]) == pytest.approx(0.5)
    assert float(dur["id10003/vidD/00001"]) == pytest.approx(1.75)
    assert float(read_kv(data / "vox2_dev" / "utt2dur")["id00002/v3/00001"]) == pytest.approx(3.0)
    trials = sorted(os.listdir(data / "vox1" / "trials"))
    assert trials == ["vox1_H_cleaned.kaldi", "vox1_O_cleaned.kaldi"]
    text = (data / "vox1" / "trials" / "vox1_O_cleaned.kaldi").read_text()
    assert text.splitlines()[:2] == [
        "id10001/vidA/00001 id10001/vidB/00001 target",
        "id10001/vidA/00001 id10002/vidC/00001 nontarget",
    ]
    assert [t[2] for t in read_trials(data / "vox1" / "trials" / "vox1_O_cleaned.kaldi")] == [
        True, False, True, False]
    # a rerun replaces the dirs cleanly (stale tables such as feats.scp disappear)
    (data / "vox1" / "feats.scp").write_text("stale\n")
    prepare_voxceleb(data, vox1_root=vox1)
    assert not (data / "vox1" / "feats.scp").exists()
    assert list(read_kv(data / "vox1" / "wav.scp")) == sorted(VOX1)


def _plan(spk_id: str, language: str, utts):
    from bccmt.corpus.layout import SpeakerPlan
    from bccmt.corpus.speakers import Speaker

    spk = Speaker(spk_id, "m", language, "m1", 40, 50, 170, 1.0, 0.0)
    return SpeakerPlan(spk, "voxceleb1/wav", [u for u in utts if u.startswith(spk_id)])


def test_maker_o_e_h_lists_converted(corpus, tmp_path):
    """The mini-corpus maker's three lists (official names and format) -> three Kaldi lists."""
    from bccmt.corpus.layout import exact_trials
    from bccmt.corpus.maker import write_trials

    vox1, vox2 = corpus
    test = [_plan(spk, lang, VOX1) for spk, lang in (("id10001", "en"), ("id10002", "en"),
                                                     ("id10003", "de"))]
    # 3 target pairs (id10001 across its 2 videos: 2; id10002 in its one video: 1); 11 pairs of
    # different speakers, 6 of them within the "en" group
    lists = {"veri_test2.txt": exact_trials(test[:2], 8, 1, "O"),
             "list_test_all2.txt": exact_trials(test, 14, 1, "E"),
             "list_test_hard2.txt": exact_trials(test, 9, 1, "H", same_group=True)}
    for name, trials in lists.items():
        write_trials(str(vox1 / name), trials)
    data = tmp_path / "data"
    prepare_voxceleb(data, vox1_root=vox1, vox2_root=vox2)
    tdir = data / "vox1" / "trials"
    assert sorted(os.listdir(tdir)) == ["vox1_E_cleaned.kaldi", "vox1_H_cleaned.kaldi",
                                        "vox1_O_cleaned.kaldi"]
    for name, kaldi, n in (("veri_test2.txt", "vox1_O_cleaned", 8),
                           ("list_test_all2.txt", "vox1_E_cleaned", 14),
                           ("list_test_hard2.txt", "vox1_H_cleaned", 9)):
        got = read_trials(tdir / f"{kaldi}.kaldi")
        want = [(a[:-4], b[:-4], label == 1) for label, a, b in lists[name]]
        assert got == want and len(got) == n and sum(t[2] for t in got) == 3, kaldi
    hard = read_trials(tdir / "vox1_H_cleaned.kaldi")
    assert all(t[2] or "id10003" not in t[0] + t[1] for t in hard)  # no cross-language non-target


def test_vox2_m4a_layout_durations(tmp_path):
    vox2 = tmp_path / "voxceleb2"
    write_m4a(vox2 / "dev" / "aac" / "id00007" / "vid" / "00001.m4a", 1.5)
    prepare_voxceleb(tmp_path / "data", vox2_root=vox2)
    wav = read_kv(tmp_path / "data" / "vox2_dev" / "wav.scp")
    assert list(wav) == ["id00007/vid/00001"] and wav["id00007/vid/00001"].endswith("00001.m4a")
    dur = float(read_kv(tmp_path / "data" / "vox2_dev" / "utt2dur")["id00007/vid/00001"])
    assert abs(dur - 1.5) < 0.01


def test_malformed_trial_line_names_file_and_line(tmp_path):
    lst = tmp_path / "veri_test.txt"
    lst.write_text(OFFICIAL_O2 + "2 id10001/vidA/00001.wav id10002/vidC/00001.wav\n")
    with pytest.raises(PrepError, match=r"veri_test.txt:5: expected"):
        convert_trials(lst, VOX1, tmp_path / "out.kaldi")
    lst.write_text("1 id10001/vidA/00001.wav\n")
    with pytest.raises(PrepError, match=r"veri_test.txt:1: expected"):
        convert_trials(lst, VOX1, tmp_path / "out.kaldi")
    assert not (tmp_path / "out.kaldi").exists()


def test_trial_utterances_missing_from_data_dir(tmp_path):
    lst = tmp_path / "veri_test2.txt"
    lst.write_text(OFFICIAL_O2 + "1 id10009/zz/00001.wav id10009/zz/00002.wav\n")
    with pytest.raises(PrepError, match=r"2 trial utterances are not in the data dir, e\.g\. "
                                        r"id10009/zz/00001, id10009/zz/00002"):
        convert_trials(lst, VOX1, tmp_path / "out.kaldi")


def test_trial_speaker_in_training_is_an_error(corpus, tmp_path):
    vox1, vox2 = corpus
    check_speaker_overlap({"id10001", "id10002"}, {"id00001"})
    with pytest.raises(PrepError, match=r"1 speaker\(s\) of the trials are also training speakers: id10002"):
        check_speaker_overlap({"id10001", "id10002"}, {"id00001", "id10002"})
    # a VoxCeleb2 dev speaker that also appears in the trials
    make_wav(vox2 / "dev" / "wav" / "id10002" / "vx" / "00001.wav", 1.0)
    with pytest.raises(PrepError, match=r"1 speaker\(s\) of \S+/vox1_O_cleaned.kaldi vs \S+/vox2_dev/utt2spk are also "
                       r"training speakers: id10002"):
        prepare_voxceleb(tmp_path / "data", vox1_root=vox1, vox2_root=vox2)


def test_shell_wrapper(corpus, tmp_path):
    vox1, vox2 = corpus
    trials = tmp_path / "lists"
    trials.mkdir()
    (trials / "veri_test.txt").write_text(OFFICIAL_O2)
    env = dict(os.environ, PYTHONPATH=str(REPO), LC_ALL="C")
    r = subprocess.run(["bash", str(REPO / "local/prepare_voxceleb.sh"), "--vox1-root", str(vox1),
                        "--vox2-root", str(vox2), "--trials-dir", str(trials), "--nj", "1",
                        str(tmp_path / "data")], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "vox1: 6 utterances, 3 speakers" in r.stdout
    assert os.listdir(tmp_path / "data" / "vox1" / "trials") == ["vox1_O.kaldi"]
    r = subprocess.run(["bash", str(REPO / "local/prepare_voxceleb.sh"), "--vox3-root", "x", "d"],
                       capture_output=True, text=True, env=env)
    assert r.returncode != 0 and "unknown option --vox3-root" in r.stderr
