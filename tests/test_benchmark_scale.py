"""The scale benchmark (bccmt.bin.benchmark_scale --quick): every step runs on a small corpus shaped
like the scale corpus, the report holds every table, and a rerun resumes instead of redoing."""

import json
import subprocess
import sys

import pytest

from test_recipe_quick import make_recipe_copy

STEPS = ["corpus", "prepare", "augment", "fbank", "fbank_cm", "fbank_eval", "fbank_backend",
         "loader", "train_base", "train_tiny_kd", "extract_eval", "extract_backend"] + [
    f"score_vox1_{t}_cleaned_{b}" for t in "EHO" for b in ("cosine", "asnorm", "plda")]


def bench(recipe, work, *opts):
    return subprocess.run([sys.executable, "-m", "bccmt.bin.benchmark_scale", "--quick",
                           "--work", str(work), *opts], cwd=recipe, capture_output=True,
                          text=True, timeout=1200)


@pytest.mark.slow
def test_quick_scale_benchmark(tmp_path):
    recipe = make_recipe_copy(tmp_path / "voxceleb")
    work = tmp_path / "scale"
    r = bench(recipe, work)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    res = json.loads((work / "results.json").read_text())
    assert sorted(res["steps"]) == sorted(STEPS)
    steps = res["steps"]
    assert steps["prepare"]["trials"] == {"vox1_O_cleaned": 60, "vox1_E_cleaned": 200,
                                          "vox1_H_cleaned": 120}
    assert steps["prepare"]["train_speakers"] == 24 and steps["prepare"]["eval_speakers"] == 12
    # compressed features: about a quarter of the float32 bytes for the same utterances
    assert steps["fbank_cm"]["utts"] == steps["fbank"]["utts"] == 144
    assert 0.2 < steps["fbank_cm"]["disk"] / steps["fbank"]["disk"] < 0.35
    rows = steps["loader"]["rows"]
    assert len(rows) == 16 and all(row["crops_per_s"] > 0 for row in rows)
    assert {(row["reads"], row["workers"]) for row in rows} == {("crop", 0), ("whole", 0),
                                                               ("crop", 1), ("crop", 2)}
    for model in ("train_base", "train_tiny_kd"):
        t = steps[model]
        assert t["num_classes"] == 24 and t["steps"] == 2 and t["workers"] == 1, t
        assert t["max_rss_mb"] > 50 and t["step_time_s"] > 0
    assert "attn" in steps["train_tiny_kd"]["terms"]
    for name in STEPS:
        if name.startswith(("score_", "extract_", "fbank", "corpus", "prepare", "augment")):
            assert steps[name]["wall_s"] > 0 and steps[name]["max_rss_mb"] > 0, name
    assert steps["extract_eval"]["utts"] == 72
    text = (work / "scale.md").read_text()
    for head in ("## Stages 0, 1 and 4", "## Training loader", "## The VoxCeleb schedules",
                 "## Scoring at O/E/H size", "## Projection to full VoxCeleb2"):
        assert head in text, head
    assert "| vox1_E_cleaned | 200 | plda |" in text and "GPU h" in text
    assert text in r.stdout  # the tables are printed too
    # a rerun resumes: every step is skipped, the report is the same but for nothing, and the
    # hand-written notes below the marker survive it
    from bccmt.bin.benchmark_scale import NOTES_MARKER
    (work / "scale.md").write_text(text + "\n" + NOTES_MARKER + "\n\n## Notes\nby hand\n")
    r2 = bench(recipe, work)
    assert r2.returncode == 0, r2.stderr[-2000:]
    assert r2.stderr.count("done before") == len(STEPS)
    assert json.loads((work / "results.json").read_text())["steps"] == steps
    again = (work / "scale.md").read_text()
    assert again.startswith(text) and again.endswith(NOTES_MARKER + "\n\n## Notes\nby hand\n")
    # results of another corpus config are not mixed in
    r3 = bench(recipe, work, "--corpus-conf", "conf/mini_corpus.yaml")
    assert r3.returncode == 1 and "holds another quick corpus config" in r3.stderr
    r4 = subprocess.run([sys.executable, "-m", "bccmt.bin.benchmark_scale", "--report-only",
                         "--work", str(work), "--corpus-conf", "conf/mini_corpus.yaml"],
                        cwd=recipe, capture_output=True, text=True, timeout=120)
    assert r4.returncode == 1 and "holds results for corpus config" in r4.stderr, r4.stderr
