"""Shared fixtures: one quick run of the whole recipe for the slow tests, and a trained-looking exp
dir with stage-4/5 outputs, exported once per session."""

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

RATE = 16000


def speaker_wave(spk: int, seconds: float, seed: int) -> np.ndarray:
    """A voiced-sounding test signal: harmonics of a speaker-specific f0 under a slow envelope,
    plus noise; float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = 90.0 + 35.0 * spk + 5.0 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    x = sum(np.sin(k * phase) / k ** (1.0 + 0.3 * spk) for k in range(1, 25))
    env = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(1, 4) * t)
    x = 0.2 * x * env / np.max(np.abs(x)) + 0.01 * rng.standard_normal(t.size)
    return x.astype(np.float32)


def write_eval_set(data: Path, n_spk: int = 4, n_utt: int = 3):
    """data/vox1 with wav files, utt2spk and a trial list (one utterance is 0.35 s: tiled)."""
    from bccmt.io.tables import write_kv

    wav_dir = data / "wav"
    wav_dir.mkdir(parents=True)
    wav, u2s = {}, {}
    for s in range(n_spk):
        for u in range(n_utt):
            utt = f"id2{s:04d}/vid/{u:05d}"
            path = wav_dir / f"{s}_{u}.wav"
            seconds = 0.35 if (s, u) == (0, 0) else 1.0 + 0.7 * u
            sf.write(str(path), speaker_wave(s, seconds, 10 * s + u), RATE, subtype="PCM_16")
            wav[utt], u2s[utt] = str(path), f"id2{s:04d}"
    write_kv(data / "wav.scp", wav)
    write_kv(data / "utt2spk", u2s)
    utts = sorted(wav)
    lines = [f"{a} {b} {'target' if u2s[a] == u2s[b] else 'nontarget'}"
             for i, a in enumerate(utts) for b in utts[i + 1:]]
    (data / "trials").mkdir()
    (data / "trials" / "tiny_O.kaldi").write_text("\n".join(lines) + "\n")
    return data / "trials" / "tiny_O.kaldi"


@pytest.fixture
def keep_logging():
    """For tests of entry points whose main() sets up logging (force=True): restores pytest's
    handlers afterwards (``pytestmark = pytest.mark.usefixtures("keep_logging")``)."""
    import logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="session")
def scored_exp(tmp_path_factory):
    """exp/bccmt_tiny (random init) with stage-4 embeddings of a training set (random fbank) and
    of a wav eval set, and stage-5 cosine results: what bccmt.bin.export reads."""
    from test_extract import make_data, make_exp

    from bccmt.scoring import score_all
    from bccmt.embed import ExtractConfig, copy_utt2spk, extract_job, speaker_means

    root = tmp_path_factory.mktemp("recipe")
    exp = make_exp(root / "exp" / "bccmt_tiny")
    train, _ = make_data(root / "data" / "vox2_dev", [120, 200, 90, 300, 150, 160], n_spk=3)
    trials = write_eval_set(root / "data" / "vox1")
    for data in (train, root / "data" / "vox1"):
        out = exp / "embeddings" / data.name
        _, scp, _ = extract_job(exp, data, out, cfg=ExtractConfig())
        copy_utt2spk(data, out)
        if data == train:
            speaker_means(scp, data / "utt2spk", out)
    score_all(exp, [trials], ["cosine"], "vox2_dev", None, None, 10, None, 2)
    return root, exp, trials


@pytest.fixture(scope="session")
def exported(scored_exp):
    """scored_exp exported once (ONNX, TorchScript, dynamic int8): (root, exp, trials, dir)."""
    from bccmt.export.pipeline import ExportConfig, export_exp

    root, exp, trials = scored_exp
    out = export_exp(exp, cfg=ExportConfig(int8=True))
    return root, exp, trials, out


@pytest.fixture(scope="session")
def quick_recipe(tmp_path_factory):
    """(recipe dir, CompletedProcess) of `bash run.sh --quick true --train-threads 1` (stages 0-6)
    in a private copy of egs/voxceleb, run once per session for the slow tests that build on its
    outputs."""
    from test_recipe_quick import make_recipe_copy

    recipe = make_recipe_copy(tmp_path_factory.mktemp("recipe") / "voxceleb")
    # --train-threads 1: the teacher's training is bit-reproducible run to run only with one
    # torch thread (two threads gave different thresholds in two runs of the same code on the
    # same machine), and tests/test_golden_quick_run.py compares results to the last digit.
    proc = subprocess.run(["bash", "run.sh", "--quick", "true", "--train-threads", "1"],
                          cwd=recipe, capture_output=True, text=True, timeout=1500)
    return recipe, proc


@pytest.fixture(scope="session")
def quick_exported(quick_recipe):
    """(recipe dir, CompletedProcess, RESULTS.md text before it) of stage 7 of the quick run
    (`bash run.sh --quick true --stage 7 --stop-stage 7 --latency-quick true`: exports, their
    accuracy by `bccmt embed` and sherpa-onnx, latency), run once per session after quick_recipe."""
    recipe, proc = quick_recipe
    if proc.returncode != 0:
        pytest.fail("the quick recipe (stages 0-6) failed; see test_quick_recipe_end_to_end")
    before = (recipe / "quick" / "RESULTS.md").read_text()
    proc7 = subprocess.run(
        ["bash", "run.sh", "--quick", "true", "--stage", "7", "--stop-stage", "7",
         "--latency-quick", "true"], cwd=recipe, capture_output=True, text=True, timeout=1500)
    return recipe, proc7, before
