"""local/score.sh end to end on tiny synthetic embeddings, and its error on missing trial keys."""

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from bccmt.io.tables import write_kv
from bccmt.io.vectors import read_vectors, write_vectors

REPO = Path(__file__).resolve().parents[1]


def _emb_dir(path, spk_prefix, n_spk, n_utt, rng, dim=16, spk_mean=False):
    centres = rng.normal(size=(n_spk, dim)) * 2.0
    items, u2s = [], {}
    for s in range(n_spk):
        spk = f"{spk_prefix}{s:04d}"
        for u in range(n_utt):
            utt = f"{spk}/vid/{u:05d}"
            items.append((utt, centres[s] + rng.normal(size=dim) + 3.0))
            u2s[utt] = spk
    write_vectors(path / "xvector.ark", path / "xvector.scp", items)
    write_kv(path / "utt2spk", u2s)
    if spk_mean:
        keys, emb = read_vectors(path / "xvector.scp")
        spks = sorted(set(u2s.values()))
        write_vectors(path / "spk_xvector.ark", path / "spk_xvector.scp",
                      [(s, emb[[u2s[k] == s for k in keys]].mean(0)) for s in spks])
    return sorted(u2s), u2s


@pytest.fixture()
def recipe(tmp_path):
    """A recipe-like dir: utils/local links, tiny train/eval embeddings and a trial list."""
    rng = np.random.default_rng(0)
    for name in ("utils", "local"):
        os.symlink(REPO / name, tmp_path / name)
    exp = tmp_path / "exp" / "m"
    _emb_dir(exp / "embeddings" / "vox2_dev", "id0", 30, 6, rng, spk_mean=True)
    utts, u2s = _emb_dir(exp / "embeddings" / "vox1", "id1", 8, 4, rng)
    lines = [f"{a} {b} {'target' if u2s[a] == u2s[b] else 'nontarget'}"
             for i, a in enumerate(utts) for b in utts[i + 1:]]
    trials = tmp_path / "data" / "vox1" / "trials" / "tiny_O.kaldi"
    trials.parent.mkdir(parents=True)
    trials.write_text("\n".join(lines) + "\n")
    return tmp_path, exp, trials, lines


def _run(cwd, *args):
    env = dict(os.environ, PYTHONPATH=str(REPO), PATH=f"{REPO / 'utils'}:{os.environ['PATH']}")
    return subprocess.run(["bash", "local/score.sh", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)


def test_score_sh_end_to_end(recipe):
    cwd, exp, trials, lines = recipe
    r = _run(cwd, "--backends", "cosine asnorm plda", "--top-n", "10", "exp/m",
             "data/vox1/trials/tiny_O.kaldi")
    assert r.returncode == 0, r.stderr
    for backend in ("cosine", "asnorm", "plda"):
        score = exp / "scores" / f"tiny_O.{backend}.score"
        got = [ln.split() for ln in score.read_text().splitlines()]
        assert [g[:2] for g in got] == [ln.split()[:2] for ln in lines]  # trial order
        res = yaml.safe_load((exp / "scores" / f"tiny_O.{backend}.result").read_text())
        assert res["num_target"] == 8 * 6 and res["num_nontarget"] == len(lines) - 48
        assert res["eer_percent"] < 10.0  # well-separated synthetic speakers
        assert 0.0 <= res["min_dcf_p0.01"] <= 1.0 and "min_dcf_p0.001_threshold" in res
        assert res["backend"] == backend
    asn = yaml.safe_load((exp / "scores" / "tiny_O.asnorm.result").read_text())
    info = asn["backend_info"]
    assert info["top_n"] == 10 and "30 training speaker" in info["cohort"]
    plda = yaml.safe_load((exp / "scores" / "tiny_O.plda.result").read_text())
    assert plda["backend_info"]["lda_dim"] == 16 and plda["backend_info"]["plda_em_iters"] == 10
    assert "tiny_O cosine" in r.stdout


def test_score_sh_missing_keys_error(recipe):
    cwd, exp, trials, lines = recipe
    extra = [f"id19999/vid/{i:05d} {lines[0].split()[0]} nontarget" for i in range(7)]
    trials.write_text("\n".join(lines + extra) + "\n")
    r = _run(cwd, "--backends", "cosine", "exp/m", "data/vox1/trials/tiny_O.kaldi")
    assert r.returncode != 0
    assert "7 trial utterances have no embedding" in r.stderr
    assert "id19999/vid/00000" in r.stderr and "embeddings/vox1/xvector.scp" in r.stderr
    assert not (exp / "scores" / "tiny_O.cosine.score").exists()


def test_score_sh_usage_and_unknown_option(recipe):
    cwd = recipe[0]
    r = _run(cwd, "exp/m")
    assert r.returncode == 1 and "Usage:" in r.stderr
    r = _run(cwd, "--no-such", "1", "exp/m", "x")
    assert r.returncode == 1 and "unknown option --no-such" in r.stderr
    r = _run(cwd, "--help")
    assert r.returncode == 0 and "--top-n (300)" in r.stdout


def test_speaker_overlap_is_refused(recipe):
    cwd, exp, trials, lines = recipe
    utts = {u for ln in lines for u in ln.split()[:2]}
    write_kv(exp / "embeddings" / "vox1" / "utt2spk", {u: "id00000" for u in utts})
    r = _run(cwd, "--backends", "cosine", "exp/m", "data/vox1/trials/tiny_O.kaldi")
    assert r.returncode != 0 and "trial speakers are training speakers" in r.stderr


def test_report_table_and_det(recipe):
    import sys

    cwd, exp, trials, lines = recipe
    assert _run(cwd, "--backends", "cosine plda", "exp/m", "data/vox1/trials/tiny_O.kaldi"
                ).returncode == 0
    from bccmt.exp import save_resolved  # what training writes
    from bccmt.features import FbankConfig

    save_resolved({"model": {"name": "bccmt_tiny", "args": {}}, "train": {"seed": 42}},
                  FbankConfig(), exp / "config.yaml", config_file="conf/tiny.yaml")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-m", "bccmt.bin.report", "--exps", "exp/m", "--out",
                        "RESULTS.md", "--no-flops"], cwd=cwd, env=env, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    md = (cwd / "RESULTS.md").read_text()
    rows = [ln for ln in md.splitlines() if ln.startswith("| m |")]
    assert [ln.split("|")[4].strip() for ln in rows] == ["cosine", "plda"]
    assert all("| tiny_O |" in ln and "| tiny.yaml | 42 |" in ln for ln in rows)
    cos = yaml.safe_load((exp / "scores" / "tiny_O.cosine.result").read_text())
    assert f"| {cos['eer_percent']:.3f} |" in rows[0]
    assert "commit " in md and "| m |" in r.stdout
    assert (cwd / "RESULTS_det.png").read_bytes()[:4] == b"\x89PNG"


def test_asnorm_without_speaker_means_averages_in_memory(recipe):
    """spk_xvector.scp missing: the cohort is computed from xvector.scp + utt2spk, giving the
    scores the stage-4 speaker means give (and a warning)."""
    from bccmt.embed import speaker_means
    from bccmt.scoring import score_all

    _, exp, trials, _ = recipe
    train = exp / "embeddings" / "vox2_dev"
    speaker_means(train / "xvector.scp", train / "utt2spk", train)  # stage 4's means
    with_file = score_all(exp, [trials], ["asnorm"], "vox2_dev", None, exp / "a", 5, 0, 2)
    for name in ("spk_xvector.scp", "spk_xvector.ark"):
        (train / name).unlink()
    without = score_all(exp, [trials], ["asnorm"], "vox2_dev", None, exp / "b", 5, 0, 2)
    a = (exp / "a" / "tiny_O.asnorm.score").read_text().split()
    b = (exp / "b" / "tiny_O.asnorm.score").read_text().split()
    assert len(a) == 3 * len(read_trials_lines(trials)) and a[:2] == b[:2]
    # the means file holds float32 and the scores 6 decimals: equal up to that rounding
    np.testing.assert_allclose(np.array(a[2::3], float), np.array(b[2::3], float), rtol=0, atol=1e-5)
    assert with_file and without


def read_trials_lines(path):
    return [ln for ln in Path(path).read_text().splitlines() if ln.strip()]
