"""KD study: confidence intervals by hand, arms and settings checks, the report from hand-made runs."""

import json
import math
from pathlib import Path

import pytest
import yaml

from bccmt.studies.kd_study import StudyError, read_arms_file, run_dir, setup_study, sha256
from bccmt.studies.kd_study_stats import bootstrap_ci, compare_paired, paired_t_ci
from bccmt.kd.teacher import every_block_pairs
from bccmt.train import checkpoint as ckpt
from bccmt.config import load_config
from bccmt.train.trainer import run_training
from test_train_helpers import make_feats_dir, small_config, standin  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parents[1]
T_975_2 = 4.302652729911275  # t table: 97.5% quantile, 2 degrees of freedom


def test_paired_t_ci_by_hand():
    lo, hi = paired_t_ci([1.0, 2.0, 3.0])  # mean 2, sd 1, n 3
    assert (lo, hi) == pytest.approx((2 - T_975_2 / math.sqrt(3), 2 + T_975_2 / math.sqrt(3)))
    assert all(math.isnan(v) for v in paired_t_ci([1.0]))


def test_bootstrap_ci_by_hand():
    # Means of 3 draws from {0, 3, 6}: P(0) = P(6) = 1/27 > 2.5%, so the 95% interval is [0, 6];
    # P(mean <= 1) = 4/27 > 10% > P(mean <= 0), so the 80% interval is [1, 5].
    assert bootstrap_ci([0.0, 3.0, 6.0]) == (0.0, 6.0)
    assert bootstrap_ci([0.0, 3.0, 6.0], level=0.8) == (1.0, 5.0)
    assert bootstrap_ci([1.0, 2.5, 7.0], seed=3) == bootstrap_ci([1.0, 2.5, 7.0], seed=3)
    r = compare_paired({1: 50.0, 2: 50.0, 3: 0.0, 4: 9.0}, {1: 0.0, 2: 50.0, 3: 0.0})
    assert r["seeds"] == [1, 2, 3] and r["diff_mean"] == pytest.approx(-50 / 3)
    assert r["relative_percent"] == pytest.approx(-50.0)  # -16.67 of a plain mean of 33.33
    assert r["bootstrap_ci"] == [-50.0, 0.0]  # P(all three draws 0) = 8/27 > 2.5%


def test_ablation_arms_file_and_every_block_pairs():
    from bccmt.models.bccmt_net import BCCMTConfig, map_shapes
    from bccmt.models.registry import model_args

    arms = read_arms_file(REPO / "egs/voxceleb/conf/kd_study_ablations.txt")
    assert {"kd", "lambda0.3", "lambda1", "lambda3", "lambda30", "mse", "every_block",
            "teacher_mid", "emb", "lambda10_emb"} <= set(arms)
    kd_conf = REPO / "egs/voxceleb/conf/bccmt_tiny_kd.yaml"
    weight = {name: load_config(kd_conf, o).kd.weight for name, o in arms.items()}
    for name, w in weight.items():  # a lambda arm is what its name says
        if name.startswith("lambda"):
            assert w == float(name[len("lambda"):].split("_")[0]), name
    # the arms that change one other thing of the earlier default keep its lambda 1, so that they
    # reproduce the README's ablation table now that "kd" (the config as is) has lambda 10
    assert weight["kd"] == 10.0
    assert all(weight[a] == 1.0 for a in ("mse", "every_block", "teacher_mid", "emb"))
    tiny, base = (BCCMTConfig(**model_args(n)) for n in ("bccmt_tiny", "bccmt_base"))
    pairs = every_block_pairs(tiny.blocks, base.blocks)
    layers = load_config(kd_conf, arms["every_block"]).kd.layers
    assert [tuple(p) for p in layers] == pairs
    s_shapes, t_shapes = map_shapes(tiny, 200), map_shapes(base, 200)
    assert all(s_shapes[s] == t_shapes[t] for s, t in pairs)
    assert set(t for _, t in pairs) >= {1, 3, 9, 11}  # the default pairs are among them
    for overrides in arms.values():
        assert load_config(kd_conf, overrides).kd.enabled


# ---- a hand-made study: stand-in teacher, two configs, one trial list, score files ----

GOOD = [0.9, 0.1, 0.8, 0.2]  # targets above nontargets: EER 0%
HALF = [0.9, 0.5, 0.1, 0.2]  # one target below both nontargets: EER 50%
TRIALS = "a b target\na c nontarget\nd e target\nd f nontarget\n"


@pytest.fixture
def study(tmp_path, standin):
    d = make_feats_dir(tmp_path / "data")
    run_training(small_config(), d, tmp_path / "teacher", device="cpu")
    confs = {}
    for name, kd in (("plain", {}), ("kd", {"enabled": True})):
        confs[name] = tmp_path / f"{name}.yaml"
        confs[name].write_text(yaml.safe_dump(small_config(kd=kd).to_dict()))
    (tmp_path / "trials.kaldi").write_text(TRIALS)
    settings = {"teacher_exp": str(tmp_path / "teacher"), "kd_config": str(confs["kd"]),
                "plain_config": str(confs["plain"]), "kd_config_sha256": sha256(confs["kd"]),
                "plain_config_sha256": sha256(confs["plain"]), "train_data": str(d),
                "backend_data": str(d), "eval_data": str(d),
                "trials": [str(tmp_path / "trials.kaldi")], "backends": ["cosine"],
                "train_opts": ["train.epochs=2"], "monitor_utts": 8}
    return tmp_path / "study", settings


def _fake_run(study_dir, arm, seed, scores, history=None):
    run = run_dir(study_dir, arm, seed)
    (run / "scores").mkdir(parents=True)
    pairs = [line.split()[:2] for line in TRIALS.splitlines()]
    (run / "scores/trials.cosine.score").write_text(
        "".join(f"{e} {t} {s}\n" for (e, t), s in zip(pairs, scores)))
    if history is not None:
        ckpt.save_atomic({"history": history}, run / "models/epoch_2.pt")
    (run / "study.done").write_text(f"arm: {arm}\nseed: {seed}\nseconds_total: {10 * seed}\n")


def test_setup_keeps_settings_and_arm_definitions(study):
    study_dir, settings = study
    setup_study(study_dir, settings, {"kd": []})
    s = setup_study(study_dir, settings, {"lam3": ["kd.weight=3"]})  # arms accumulate
    assert s["arms"] == {"kd": [], "lam3": ["kd.weight=3"]}
    with pytest.raises(StudyError, match=r"arm 'lam3' is recorded as \['kd.weight=3'\]"):
        setup_study(study_dir, settings, {"lam3": ["kd.weight=4"]})
    with pytest.raises(StudyError, match="train_opts"):
        setup_study(study_dir, {**settings, "train_opts": []}, {"kd": []})
    with pytest.raises(StudyError, match="a pair may differ in KD alone"):
        setup_study(study_dir, settings, {"lr": ["optim.lr=1"]})
    with pytest.raises(StudyError, match="arm 'typo'.*kd.wieght"):
        setup_study(study_dir, settings, {"typo": ["kd.wieght=1"]})
    with pytest.raises(ckpt.CheckpointError, match="epoch_9.pt: no such checkpoint"):
        setup_study(study_dir, settings, {"mid": ["kd.teacher_checkpoint=epoch_9.pt"]})


def test_report_recomputes_from_score_files(study, tmp_path):
    from bccmt.bin.kd_study import main

    study_dir, settings = study
    setup_study(study_dir, settings, {"kd": [], "last": ["kd.layers=[[1,1]]"]})
    hist = [[{"epoch": 1, "kd_share": 0.1, "map_kl_default": 0.5},
             {"epoch": 2, "kd_share": 0.2, "map_kl_default": 0.2}],
            [{"epoch": 1, "kd_share": 0.3, "map_kl_default": 0.5},
             {"epoch": 2, "kd_share": 0.4, "map_kl_default": 0.4}]]
    for seed, (p, k) in enumerate([(HALF, GOOD), (HALF, HALF), (GOOD, GOOD)], 1):
        _fake_run(study_dir, "plain", seed, p)
        _fake_run(study_dir, "kd", seed, k, hist[seed - 1] if seed < 3 else None)
    _fake_run(study_dir, "last", 1, GOOD)
    assert main(["report", "--study-dir", str(study_dir)]) == 0
    res = json.loads((study_dir / "results.json").read_text())
    eer = {(r["arm"], r["metric"]): r for r in res["comparisons"] if r["backend"] == "cosine"}
    main_eer = eer[("kd", "eer")]
    assert [res["runs"]["plain"][s]["metrics"]["trials"]["cosine"]["eer"] for s in "123"] == \
        pytest.approx([50.0, 50.0, 0.0])
    assert main_eer["diff_mean"] == pytest.approx(-50 / 3)
    sd = math.sqrt(((-100 / 3) ** 2 + 2 * (50 / 3) ** 2) / 2)
    half = T_975_2 * sd / math.sqrt(3)
    assert main_eer["t_ci"] == pytest.approx([-50 / 3 - half, -50 / 3 + half])
    assert main_eer["relative_percent"] == pytest.approx(-50.0)
    assert eer[("last", "eer")]["n"] == 1 and eer[("last", "eer")]["t_ci"] == [None, None]
    assert res["diagnostics"]["kd"]["kd_share"] == pytest.approx([0.2, 0.3])
    assert res["diagnostics"]["kd"]["map_kl_default"] == pytest.approx([0.5, 0.3])
    maps = res["teacher_entropy"]["final.pt"]["maps"]
    assert [m["distilled_by"] for m in maps] == [["kd"], ["kd", "last"]]
    assert all(0.0 < m["entropy_rel"] <= 1.0 for m in maps)
    text = (study_dir / "RESULTS.md").read_text()
    assert "| kd | (none) | trials | cosine | EER (%) | 3 | 33.33 ± 28.87 | 16.67 ± 28.87 " \
           "| -16.67 |" in text and "-50.00% " in text and "+15.5%" not in text
    # a .result that disagrees with its score file stops the report
    result = run_dir(study_dir, "kd", 2) / "scores/trials.cosine.result"
    result.write_text("eer_percent: 12.5\n")
    with pytest.raises(StudyError, match="disagrees"):
        from bccmt.studies.kd_study_results import collect
        collect(study_dir, lambda study: None)  # stops before the crops are needed
