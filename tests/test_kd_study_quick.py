"""The KD study in quick mode, end to end from the quick recipe's teacher and data (CI's toy run)."""

import json
import subprocess

import pytest

from bccmt.io.scores import read_scores
from bccmt.metrics import compute_metrics

STUDY = ["bash", "run.sh", "--quick", "true", "--stage", "8", "--kd-study", "true",
         "--kd-study-opts", "--monitor-utts 8 --nj 1 --train-threads 1"]


@pytest.mark.slow
def test_quick_study_end_to_end(quick_recipe):
    recipe, recipe_proc = quick_recipe  # tests/conftest.py: the quick recipe, stages 0-6
    assert recipe_proc.returncode == 0, (recipe_proc.stdout + recipe_proc.stderr)[-4000:]
    proc = subprocess.run(STUDY, cwd=recipe, capture_output=True, text=True, timeout=900)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    study = recipe / "quick/exp/kd_study"
    res = json.loads((study / "results.json").read_text())
    assert sorted(res["runs"]) == ["kd", "plain"]
    assert sorted(res["runs"]["plain"]) == sorted(res["runs"]["kd"]) == ["1", "2"]
    trials = res["study"]["trials"]
    assert len(trials) == 1 and res["study"]["backends"] == ["cosine", "plda"]
    for runs in res["runs"].values():  # results.json agrees with the per-seed score files
        for r in runs.values():
            for backend, m in r["metrics"]["vox1_O_cleaned"].items():
                ref = compute_metrics(*read_scores(recipe / m["score_file"], recipe / trials[0]))
                assert m["eer"] == pytest.approx(ref["eer"]) and backend in m["score_file"]
                assert m["min_dcf_0.01"] == pytest.approx(ref["min_dcf_0.01"])
    rows = [r for r in res["comparisons"] if r["arm"] == "kd"]
    assert len(rows) == 2 * 3 and all(r["n"] == 2 and len(r["bootstrap_ci"]) == 2 for r in rows)
    diag = res["diagnostics"]
    assert diag["plain"]["map_kl_default"][0] > 0 and diag["kd"]["map_kl_default"][0] > 0
    assert 0 < diag["kd"]["kd_share"][0] < 1 and "kd_share" not in diag["plain"]
    maps = res["teacher_entropy"]["final.pt"]["maps"]
    assert [m["map"] for m in maps if m["distilled_by"] == ["kd"]] == [1, 3, 9, 11]
    text = (study / "RESULTS.md").read_text()
    assert "## Main comparison: kd vs plain" in text and "| -15.5% |" in text
    # a rerun skips every finished student and reproduces the tables
    again = subprocess.run(STUDY, cwd=recipe, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
    assert again.stderr.count("finished, skipped") == 4
    res2 = json.loads((study / "results.json").read_text())
    assert res2["comparisons"] == res["comparisons"]
