"""bccmt.exp.ExpLayout: the exp-dir paths the recipe uses, its globs, and that the layout (and the
torch-free stages that use it) can be imported without torch."""

import subprocess
import sys
from pathlib import Path

from bccmt.exp import EmbeddingsDir, ExpLayout, score_files

REPO = Path(__file__).resolve().parents[1]


def _rel(layout: ExpLayout, path: Path) -> str:
    return path.relative_to(layout.root).as_posix()


def test_layout_paths():
    exp = ExpLayout("exp/m")
    assert exp == ExpLayout(Path("exp/m")) and exp.root == Path("exp/m")
    got = {
        "config": exp.config, "log": exp.log, "history": exp.history, "models": exp.models,
        "final": exp.final, "epoch": exp.epoch(7), "scores": exp.scores, "export": exp.export,
        "xvector_scp": exp.xvector_scp("vox1"),
        "score": exp.score_file("vox1_O", "cosine"), "result": exp.result_file("vox1_O", "plda"),
    }
    assert {k: _rel(exp, v) for k, v in got.items()} == {
        "config": "config.yaml", "log": "train.log", "history": "history.jsonl",
        "models": "models", "final": "models/final.pt", "epoch": "models/epoch_7.pt",
        "scores": "scores", "export": "export", "xvector_scp": "embeddings/vox1/xvector.scp",
        "score": "scores/vox1_O.cosine.score", "result": "scores/vox1_O.plda.result",
    }
    emb = exp.embeddings("vox2_dev")
    assert emb == EmbeddingsDir(Path("exp/m/embeddings/vox2_dev"))
    assert [_rel(exp, p) for p in (*emb.xvector(), *emb.xvector(3), *emb.spk_xvector,
                                   emb.spk_xvector_scp, emb.utt2spk, emb.extract_info)] == [
        f"embeddings/vox2_dev/{n}" for n in (
            "xvector.ark", "xvector.scp", "xvector.3.ark", "xvector.3.scp", "spk_xvector.ark",
            "spk_xvector.scp", "spk_xvector.scp", "utt2spk", "extract.yaml")]
    int8 = exp.export_eval("int8")
    assert int8 == ExpLayout("exp/m/export_eval/int8")
    assert _rel(exp, int8.xvector_scp("vox1")) == "export_eval/int8/embeddings/vox1/xvector.scp"
    assert _rel(exp, int8.result_file("O", "cosine")) == "export_eval/int8/scores/O.cosine.result"
    assert score_files("elsewhere", "O", "asnorm") == (Path("elsewhere/O.asnorm.score"),
                                                        Path("elsewhere/O.asnorm.result"))


def test_results_and_export_eval_sets(tmp_path):
    exp = ExpLayout(tmp_path / "m")
    for layout, names in ((exp, ("b.cosine", "a.cosine", "a.plda")),
                          (exp.export_eval("fp32"), ("a.cosine",))):
        layout.scores.mkdir(parents=True)
        for n in names:
            (layout.scores / f"{n}.result").write_text("{}\n")
        (layout.scores / "a.cosine.score").write_text("")
    assert [p.name for p in exp.results()] == ["a.cosine.result", "a.plda.result",
                                               "b.cosine.result"]
    assert [p.name for p in exp.results("cosine")] == ["a.cosine.result", "b.cosine.result"]
    assert exp.results_by_trials("cosine") == {"a": exp.result_file("a", "cosine"),
                                               "b": exp.result_file("b", "cosine")}
    assert [p.name for p in exp.export_eval("fp32").results()] == ["a.cosine.result"]
    assert exp.export_eval("int8").results() == []
    for rt, s in (("sherpa", "vox1"), ("fp32", "vox2_dev"), ("fp32", "vox1")):
        scp = exp.export_eval(rt).xvector_scp(s)
        scp.parent.mkdir(parents=True)
        scp.write_text("")
    exp.export_eval("int8").embeddings("vox1").root.mkdir(parents=True)  # no xvector.scp
    assert exp.export_eval_sets() == [("fp32", "vox1"), ("fp32", "vox2_dev"), ("sherpa", "vox1")]


def test_shell_stages_spell_the_same_layout():
    """The shell stages still spell these paths: they must agree with the layout."""
    exp = ExpLayout("$exp_dir")
    score_sh = (REPO / "local" / "score.sh").read_text()
    assert f'"{exp.result_file("$name", "$b")}"' in score_sh
    assert f"score={exp.score_file('$name', '$b')}" in score_sh
    assert f'"{exp.xvector_scp("$train_set")}"' in score_sh
    extract_sh = (REPO / "local" / "extract_embeddings.sh").read_text()
    assert f'"{exp.config}" "{exp.final}"' in extract_sh
    export_sh = (REPO / "local" / "export_model.sh").read_text()
    assert f'"{ExpLayout("$exp").final}"' in export_sh
    assert f"d={ExpLayout('$exp').export_eval('$r').root}" in export_sh
    set_name = '$(basename "$data")'
    assert f"out={ExpLayout('$d').embeddings(set_name).root}" in export_sh


def test_layout_and_scoring_import_without_torch():
    code = ("import sys, bccmt.exp, bccmt.scoring, bccmt.export.compare\n"
            "assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
