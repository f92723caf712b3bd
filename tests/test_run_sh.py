"""run.sh's option logic without running a stage: the training-config folder chosen from corpus
roots, stage 0's corpus config (--corpus-conf), stage 1's --compress, the --student-jobs check, and
stage 7's rerun skip (local/export_model.sh)."""

import os
import subprocess
import time
from pathlib import Path

import pytest

from test_recipe_quick import make_recipe_copy

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def recipe(tmp_path):
    return make_recipe_copy(tmp_path / "voxceleb")


def run_sh(recipe, *args):
    return subprocess.run(["bash", "run.sh", *args], cwd=recipe, capture_output=True, text=True,
                          timeout=120)


def test_config_folder_follows_the_corpus(recipe, tmp_path):
    # no stage runs: --stage 9 is past the last stage
    r = run_sh(recipe, "--stage", "9")
    assert r.returncode == 0, r.stderr
    assert "training configs: conf/ (mini corpus)" in r.stdout
    r = run_sh(recipe, "--stage", "9", "--vox1-root", str(tmp_path), "--vox2-root", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "training configs: conf/voxceleb/ (corpus roots given)" in r.stdout
    r = run_sh(recipe, "--stage", "9", "--vox1-root", str(tmp_path))
    assert r.returncode == 1 and "give both --vox1-root and --vox2-root, or neither" in r.stderr
    (recipe / "conf" / "mine").mkdir()
    r = run_sh(recipe, "--stage", "9", "--train-conf", "conf/mine")
    assert r.returncode == 1 and "no training config conf/mine/bccmt_base.yaml" in r.stderr


def test_corpus_conf_picks_the_stage0_corpus(recipe):
    """--corpus-conf: stage 0's corpus YAML (empty: conf/mini_corpus.yaml, with --quick
    conf/mini_corpus_quick.yaml); the maker is a stub here that shows its arguments and stops."""
    (recipe / "local").unlink()
    (recipe / "local").mkdir()
    maker = recipe / "local" / "make_mini_corpus.sh"
    maker.write_text('#!/usr/bin/env bash\necho "maker: $*"; exit 3\n')
    maker.chmod(0o755)
    for args, conf in (([], "conf/mini_corpus.yaml"),
                       (["--quick", "true"], "conf/mini_corpus_quick.yaml"),
                       (["--corpus-conf", "conf/scale_corpus.yaml"], "conf/scale_corpus.yaml"),
                       (["--quick", "true", "--corpus-conf", "conf/scale_corpus.yaml"],
                        "conf/scale_corpus.yaml")):
        r = run_sh(recipe, "--stage", "0", "--stop-stage", "0", *args)
        assert r.returncode == 3 and f"maker: --nj 2 --seed 1234 --config {conf} " in r.stdout, \
            r.stdout + r.stderr
    r = run_sh(recipe, "--stage", "0", "--corpus-conf", "conf/nope.yaml")
    assert r.returncode == 1 and "no such corpus config: conf/nope.yaml (--corpus-conf)" in r.stderr


def test_compress_reaches_every_fbank_job(recipe):
    """--compress true: stage 1 passes it to every make_fbank.sh call (stubs here: augmentation and
    data-dir tools do nothing, make_fbank.sh shows its arguments)."""
    (recipe / "local").unlink()
    (recipe / "local").mkdir()
    augment = ('src="${@: -1}"; for t in reverb noise music babble; do d=$src"_$t"; mkdir -p $d; '
               'echo "a-$t x.wav" > $d/wav.scp; echo "a-$t s" > $d/utt2spk; '
               'echo "s a-$t" > $d/spk2utt; done')
    for name, body in (("augment_data_dir.sh", augment),
                       ("make_fbank.sh", 'echo "make_fbank: $*"; exit 0')):
        script = recipe / "local" / name
        script.write_text(f"#!/usr/bin/env bash\n{body}\n")
        script.chmod(0o755)
    data = recipe / "data" / "vox2_dev"
    data.mkdir(parents=True)
    (data / "wav.scp").write_text("a x.wav\n")
    (data / "utt2spk").write_text("a s\n")
    (data / "spk2utt").write_text("s a\n")
    r = run_sh(recipe, "--stage", "1", "--stop-stage", "1", "--compress", "true")
    calls = [ln for ln in r.stdout.splitlines() if ln.startswith("make_fbank:")]
    # the training and evaluation sets; the stubs write no features, so stage 1 stops after them
    assert len(calls) == 2, r.stdout + r.stderr
    assert all("--compress true" in c for c in calls), calls
    r = run_sh(recipe, "--stage", "1", "--stop-stage", "1", "--compress", "maybe")
    assert r.returncode != 0 and "--compress" in r.stderr


@pytest.mark.parametrize("jobs", ["0", "two", "-1"])
def test_student_jobs_must_be_a_positive_integer(recipe, jobs):
    r = run_sh(recipe, "--stage", "3", "--stop-stage", "3", "--student-jobs", jobs)
    assert r.returncode == 1 and "--student-jobs must be >= 1" in r.stderr
    assert not (recipe / "exp" / "bccmt_tiny").exists()  # nothing trained


def _touch(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_stage7_keeps_exports_and_scores_newer_than_their_inputs(recipe):
    """A rerun of stage 7 keeps an export newer than the model and its stage-5 result, and each
    runtime's scores newer than the export: nothing is exported or embedded again."""
    exp = recipe / "exp" / "bccmt_tiny"
    for d in ("data/backend", "data/vox1"):
        _touch(recipe / d / "wav.scp", "u1 /nonexistent.wav\n")
        _touch(recipe / d / "utt2spk", "u1 s1\n")
    _touch(recipe / "data/vox1/trials/t.kaldi", "u1 u1 target\n")
    old = [_touch(exp / "models/final.pt"), _touch(exp / "scores/t.cosine.result")]
    past = time.time() - 100
    for p in old:
        os.utime(p, (past, past))
    for name in ("metadata.json", "model.onnx", "model.int8.onnx"):
        _touch(exp / "export" / name)
    mid = time.time() - 50
    for name in ("model.onnx", "model.int8.onnx"):
        os.utime(exp / "export" / name, (mid, mid))
    for rt in ("fp32", "sherpa"):
        _touch(exp / "export_eval" / rt / "scores" / "done")
    env = dict(os.environ, PATH=f"{REPO / 'utils'}:{os.environ['PATH']}")
    r = subprocess.run(["bash", "local/export_model.sh", "--runtimes", "fp32 sherpa",
                        str(exp), str(recipe / "data/backend"), str(recipe / "data/vox1")],
                       cwd=recipe, capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert f"{exp}/export is newer than its model and results: kept" in r.stdout
    for rt in ("fp32", "sherpa"):
        assert f"{exp}/export_eval/{rt}/scores are newer than the export: kept" in r.stdout
    # a newer model makes the export stale: it is redone (and fails here on the fake model)
    os.utime(exp / "models/final.pt", None)
    r = subprocess.run(["bash", "local/export_model.sh", "--runtimes", "fp32", str(exp),
                        str(recipe / "data/backend"), str(recipe / "data/vox1")],
                       cwd=recipe, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode != 0 and "kept" not in r.stdout
    assert "config.yaml: no such file" in r.stderr  # the exporter tried, and named what it lacks
