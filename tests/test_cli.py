"""The ``bccmt`` command (bccmt.bin.cli) on the session's exported model: torch-free scoring that
matches the recipe, verify, embed outputs, lenient audio and errors that name the file."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bccmt.bin.cli import main
from bccmt.io.scores import read_scores
from bccmt.io.vectors import read_vectors

REPO = Path(__file__).resolve().parents[1]
NO_TORCH = ("import sys\n"
            "class _Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'torch' or name.startswith('torch.'):\n"
            "            raise ImportError('torch is blocked in this test')\n"
            "sys.meta_path.insert(0, _Block())\n"
            "from bccmt.bin.cli import main\n"
            "rc = main(sys.argv[1:])\n"
            "assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules)\n"
            "sys.exit(rc)\n")


pytestmark = pytest.mark.usefixtures("keep_logging")


def run(args, cwd, block_torch=False):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-c", NO_TORCH] if block_torch else [sys.executable, "-m",
                                                                  "bccmt.bin.cli"]
    return subprocess.run(cmd + [str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                          text=True)


def test_score_without_torch_matches_the_recipe(exported, tmp_path):
    """Scores from audio with torch unimportable equal the recipe's stage-5 cosine scores (from
    PyTorch embeddings of the same wav files), and the same command with torch importable."""
    root, exp, trials, out = exported
    wav_scp = root / "data" / "vox1" / "wav.scp"
    args = ["score", "--model", out, "--trials", trials, "--wav-scp", wav_scp, "--out"]
    r = run(args + [tmp_path / "a.score"], tmp_path, block_torch=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "EER" in r.stdout and "12 target, 54 nontarget" in r.stdout
    r2 = run(args + [tmp_path / "b.score"], tmp_path)
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert (tmp_path / "a.score").read_text() == (tmp_path / "b.score").read_text()
    got, labels = read_scores(tmp_path / "a.score", trials)
    want, _ = read_scores(exp / "scores" / "tiny_O.cosine.score", trials)
    assert len(got) == len(want) == 66 and labels.sum() == 12
    assert np.max(np.abs(got - want)) <= 2e-6  # 6-decimal files: rounding only


def test_embed_wav_scp_matches_stage4_embeddings(exported, tmp_path):
    root, exp, trials, out = exported
    assert main(["embed", "--model", str(out), "--wav-scp", str(root / "data/vox1/wav.scp"),
                 "--out-dir", str(tmp_path / "emb")]) == 0
    keys, got = read_vectors(tmp_path / "emb" / "xvector.scp")
    ref_keys, ref = read_vectors(exp / "embeddings" / "vox1" / "xvector.scp")
    assert keys == ref_keys and got.shape == (12, 128)
    err = np.abs(got - ref).max(1) / np.linalg.norm(ref, axis=1)
    assert err.max() <= 1e-4  # includes the 0.35 s utterance (tiled to 50 frames)


def test_embed_files_npy_and_ark(exported, tmp_path, capsys):
    root, exp, trials, out = exported
    wavs = sorted((root / "data" / "vox1" / "wav").glob("1_*.wav"))
    npy = tmp_path / "e.npy"
    assert main(["embed", "--model", str(out), *map(str, wavs), "--out", str(npy)]) == 0
    emb = np.load(npy)
    assert emb.shape == (3, 128) and emb.dtype == np.float32
    assert main(["embed", "--model", str(out), *map(str, wavs), "--out-dir",
                 str(tmp_path / "d")]) == 0
    keys, vecs = read_vectors(tmp_path / "d" / "xvector.scp")
    assert keys == [str(w) for w in wavs] and np.array_equal(vecs, emb)
    assert main(["embed", "--model", str(out), str(wavs[0]), "--precision", "int8", "--out",
                 str(tmp_path / "q.npy")]) == 0
    q = np.load(tmp_path / "q.npy")[0]
    assert 0.95 < q @ emb[0] / np.linalg.norm(q) / np.linalg.norm(emb[0]) < 1.0


def test_embed_gives_stage4_embeddings(exported, tmp_path):
    """The command feeds the whole file's raw fbank to the graph: stage 4's embedding, for every
    evaluation file (0.35 s to 2.4 s)."""
    root, exp, trials, out = exported
    data = root / "data" / "vox1"
    assert main(["embed", "--model", str(out), "--wav-scp", str(data / "wav.scp"), "--out-dir",
                 str(tmp_path / "e")]) == 0
    keys, got = read_vectors(tmp_path / "e" / "xvector.scp")
    ref_keys, ref = read_vectors(exp / "embeddings" / "vox1" / "xvector.scp")
    assert keys == ref_keys
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4 * np.abs(ref).max())


def test_verify_two_wav_files_prints_a_decision(exported, tmp_path):
    root, exp, trials, out = exported
    wav = root / "data" / "vox1" / "wav"
    exe = shutil.which("bccmt")
    cmd = [exe] if exe else [sys.executable, "-m", "bccmt.bin.cli"]
    r = subprocess.run(cmd + ["verify", "--model", str(out), str(wav / "2_1.wav"),
                              str(wav / "2_2.wav")], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert r.returncode == 0, r.stderr[-2000:]
    line = r.stdout.strip()
    assert line.split()[0] in ("accept", "reject") and "score" in line and "threshold" in line
    assert "tiny_O" in line and "accept when score > threshold" in line
    assert exe, "the bccmt console script is not on PATH (pyproject [project.scripts])"


def test_verify_thresholds_and_enrollment(exported, capsys):
    from bccmt.runtime.model import ExportedModel

    root, exp, trials, out = exported
    wav = root / "data" / "vox1" / "wav"
    model = ExportedModel(out)
    for kind in ("eer", "mindcf"):
        assert main(["verify", "--model", str(out), "--threshold", kind, str(wav / "3_0.wav"),
                     str(wav / "3_1.wav")]) == 0
        thr = float(capsys.readouterr().out.split("threshold")[1].split()[0])
        assert thr == pytest.approx(model.threshold(kind), abs=1e-6)
    assert main(["verify", "--model", str(out), "--threshold", "-1", str(wav / "3_0.wav"),
                 str(wav / "3_1.wav"), str(wav / "1_1.wav")]) == 0
    assert capsys.readouterr().out.startswith("accept")  # any cosine is > -1
    e = [model.embed_audio(str(wav / f)) for f in ("3_0.wav", "3_1.wav", "1_1.wav")]
    d = model.verify(e[:2], e[2], "eer")
    m = model.prepare(np.stack(e[:2])).mean(0)
    assert d.score == pytest.approx(float(model.prepare(e[2])[0] @ m / np.linalg.norm(m)))
    assert model.verify(e[:1], e[2]).score == pytest.approx(
        float(model.prepare(e[0])[0] @ model.prepare(e[2])[0]))


def test_resample_downmix_and_m4a(exported, tmp_path, caplog):
    import logging

    from conftest import speaker_wave
    from test_audio import write_m4a

    from bccmt.runtime.model import ExportedModel

    root, exp, trials, out = exported
    x = speaker_wave(1, 1.5, 5)
    stereo8k = np.stack([x[::2], x[::2]], axis=1)
    sf.write(str(tmp_path / "s.flac"), stereo8k, 8000, subtype="PCM_16")
    model = ExportedModel(out)
    with caplog.at_level(logging.INFO):
        e = model.embed_audio(str(tmp_path / "s.flac"))
    assert e.shape == (128,)
    assert "s.flac: 2 channels, averaged to mono" in caplog.text
    assert "s.flac: resampled from 8000 Hz to 16000 Hz" in caplog.text
    m = model.embed_audio(write_m4a(tmp_path / "a.m4a", x))
    assert m.shape == (128,) and np.all(np.isfinite(m))


@pytest.mark.parametrize("case,reason", [("empty", "empty file"), ("truncated", "truncated wav"),
                                         ("corrupt", "unreadable audio"),
                                         ("missing", "no such file")])
def test_bad_audio_is_an_error_naming_the_file(exported, tmp_path, case, reason):
    root, exp, trials, out = exported
    good = root / "data" / "vox1" / "wav" / "1_1.wav"
    bad = tmp_path / f"{case}.wav"
    if case == "empty":
        bad.write_bytes(b"")
    elif case == "truncated":
        data = good.read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    elif case == "corrupt":
        bad.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes())
    r = run(["verify", "--model", out, good, bad], tmp_path)
    assert r.returncode == 1
    assert str(bad) in r.stderr and reason in r.stderr and "Traceback" not in r.stderr


def test_model_dir_errors(exported, tmp_path):
    import json

    root, exp, trials, out = exported
    assert main(["embed", "--model", str(tmp_path), "x.wav"]) == 1  # no metadata.json
    bare = tmp_path / "bare"
    shutil.copytree(out, bare)
    meta = json.loads((bare / "metadata.json").read_text())
    meta["scoring"] = None
    (bare / "metadata.json").write_text(json.dumps(meta))
    wav = root / "data" / "vox1" / "wav"
    r = run(["verify", "--model", bare, wav / "1_1.wav", wav / "1_2.wav"], tmp_path)
    assert r.returncode == 1 and "no scoring section" in r.stderr
    with pytest.raises(SystemExit):
        main(["embed", "--model", str(out)])  # neither files nor --wav-scp: usage error
