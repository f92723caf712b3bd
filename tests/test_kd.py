"""Attention-map KD: loss values, head handling, frozen teacher, teacher check, KD training run."""

import pytest
import torch

from bccmt.features import FbankConfig
from bccmt.kd.attention_loss import attention_kd_loss, embedding_kd_loss, map_divergence, match_heads
from bccmt.kd.teacher import Distiller, TeacherCheckError, chance_p_value, freeze, load_teacher
from bccmt.train import checkpoint as ckpt
from bccmt.train.trainer import run_training
from test_train_helpers import (StandInConfig, StandInNet, make_feats_dir, small_config,  # noqa: F401
                                standin)


def _maps(seed, shape=(2, 4, 6, 3)):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(*shape, generator=g) * 2, dim=-1)


def test_kd_loss_zero_iff_maps_equal():
    t = [_maps(0), _maps(1, (2, 8, 6, 6))]
    for loss in ("kl", "mse"):
        zero, per = attention_kd_loss([m.clone() for m in t], t, [(0, 0), (1, 1)], loss)
        assert zero.item() == pytest.approx(0.0, abs=1e-6) and len(per) == 2
        s = [_maps(2), _maps(3, (2, 8, 6, 6))]
        pos, _ = attention_kd_loss(s, t, [(0, 0), (1, 1)], loss)
        assert pos.item() > 1e-3


def test_kl_matches_hand_computation():
    t = torch.tensor([[[[0.5, 0.5], [1.0, 0.0]]]])
    s = torch.tensor([[[[0.25, 0.75], [0.5, 0.5]]]])
    row1 = 0.5 * torch.log(torch.tensor(0.5 / 0.25)) + 0.5 * torch.log(torch.tensor(0.5 / 0.75))
    row2 = torch.log(torch.tensor(1.0 / 0.5))
    assert map_divergence(s, t, "kl").item() == pytest.approx(((row1 + row2) / 2).item(), rel=1e-5)
    assert map_divergence(s, t, "mse").item() == pytest.approx((0.125 + 0.5) / 2, rel=1e-5)


def test_unequal_heads_average_or_map():
    s, t = _maps(0, (2, 2, 5, 4)), _maps(1, (2, 8, 5, 4))
    sa, ta = match_heads(s, t, "average")
    assert sa.shape == ta.shape == (2, 1, 5, 4)
    sm, tm = match_heads(s, t, "map")
    assert sm.shape == tm.shape == (2, 2, 5, 4)
    assert torch.allclose(tm[:, 1], t[:, 4:].mean(1)) and torch.allclose(tm.sum(-1), torch.ones(2, 2, 5))
    with pytest.raises(ValueError, match="divide"):
        match_heads(_maps(0, (1, 3, 2, 2)), _maps(0, (1, 4, 2, 2)), "map")
    with pytest.raises(ValueError, match=r"differ in batch or \(Tq, Tk\)"):
        attention_kd_loss([_maps(0, (2, 1, 5, 4))], [_maps(0, (2, 1, 5, 2))], [(0, 0)])


def test_embedding_kd_any_sizes():
    e = torch.randn(6, 12)
    assert embedding_kd_loss(e, e).item() == pytest.approx(0.0, abs=1e-7)
    assert embedding_kd_loss(torch.randn(6, 8), torch.randn(6, 20)).item() > 0


def test_teacher_gets_no_gradient_and_is_unchanged():
    torch.manual_seed(0)
    teacher = freeze(StandInNet(StandInConfig(heads=(2, 4))))
    student = StandInNet(StandInConfig(channels=8, heads=(1, 2), embedding_dim=6))
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    kd = Distiller(teacher, [(0, 0), (1, 1)], small_config(kd={"embedding_weight": 1.0}).kd)
    opt = torch.optim.SGD(student.parameters(), lr=0.1)
    x = torch.randn(4, 60, 80)
    for _ in range(3):
        emb, maps = student(x, return_attention=True)
        aam = emb.pow(2).mean()  # any student loss: the KD terms are added to it
        loss, terms = kd.loss(aam, x, emb, maps)
        assert list(terms) == kd.term_names() == ["aam", "attn", "emb", "kd_share"]
        assert terms["attn"].item() > 0 and terms["aam"] is aam
        kd_part = kd.cfg.weight * terms["attn"] + kd.cfg.embedding_weight * terms["emb"]
        assert torch.allclose(loss, aam + kd_part)
        assert terms["kd_share"].item() == pytest.approx((kd_part / loss).item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert not teacher.training  # BN running stats untouched: eval mode
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())


def test_chance_p_value():
    assert chance_p_value(0, 100, 0.01) == pytest.approx(1.0)
    assert chance_p_value(1, 10, 0.5) == pytest.approx(1 - 0.5**10)
    assert chance_p_value(10, 10, 0.5) == pytest.approx(0.5**10)


def _train_teacher(tmp_path, d, **sections):
    cfg = small_config(train={"epochs": 3}, **sections)
    run_training(cfg, d, tmp_path / "teacher", device="cpu")
    return tmp_path / "teacher"


def test_kd_run_checks_teacher_logs_terms_and_keeps_it_frozen(tmp_path, standin, monkeypatch,
                                                               caplog):
    d = make_feats_dir(tmp_path / "d")
    teacher_exp = _train_teacher(tmp_path, d, model={"args": {"heads": [2, 4]}})
    seen = {}
    import bccmt.train.distill as teacher_mod  # where the training run loads its teacher

    def spy(*a, **k):
        seen["teacher"], final = load_teacher(*a, **k)
        seen["before"] = {n: v.clone() for n, v in seen["teacher"].state_dict().items()}
        return seen["teacher"], final

    monkeypatch.setattr(teacher_mod, "load_teacher", spy)
    cfg = small_config(model={"args": {"channels": 8, "embedding_dim": 6}},
                       kd={"enabled": True, "weight": 1.0, "embedding_weight": 0.5, "check_utts": 24})
    caplog.set_level("INFO")
    out = run_training(cfg, d, tmp_path / "student", teacher_exp=teacher_exp, device="cpu")
    assert "teacher check: accuracy" in caplog.text
    assert {"attn", "emb", "aam", "loss", "kd_share"} <= set(out["history"][-1])
    last = out["history"][-1]
    assert last["attn"] > 0 and last["emb"] > 0 and 0 < last["kd_share"] < 1
    assert last["loss"] == pytest.approx(last["aam"] + last["attn"] + 0.5 * last["emb"], rel=1e-6)
    for n, v in seen["teacher"].state_dict().items():
        assert torch.equal(v, seen["before"][n]), n
    assert all(p.grad is None for p in seen["teacher"].parameters())


def test_untrained_teacher_fails_the_check(tmp_path, standin):
    d = make_feats_dir(tmp_path / "d")
    teacher_exp = _train_teacher(tmp_path, d)
    final = torch.load(teacher_exp / "models/final.pt", weights_only=True)
    torch.manual_seed(5)
    final["head_state_dict"] = {k: torch.randn_like(v) for k, v in final["head_state_dict"].items()}
    final["state_dict"] = StandInNet(StandInConfig()).state_dict()
    ckpt.save_atomic(final, teacher_exp / "models/final.pt")
    cfg = small_config(kd={"enabled": True, "check_utts": 24})
    with pytest.raises(TeacherCheckError, match="not significantly above chance 0.2500"):
        run_training(cfg, d, tmp_path / "student", teacher_exp=teacher_exp, device="cpu")


def test_teacher_is_loaded_strictly(tmp_path, standin):
    d = make_feats_dir(tmp_path / "d")
    teacher_exp = _train_teacher(tmp_path, d)
    final = torch.load(teacher_exp / "models/final.pt", weights_only=True)
    final["state_dict"].pop("out.bias")
    ckpt.save_atomic(final, teacher_exp / "models/final.pt")
    with pytest.raises(ckpt.CheckpointError, match="does not match"):
        load_teacher(teacher_exp, FbankConfig(), "cpu")


def test_teacher_features_must_equal_the_students(tmp_path, standin):
    import dataclasses

    from bccmt.exp import read_resolved

    d = make_feats_dir(tmp_path / "d")
    teacher_exp = _train_teacher(tmp_path, d)
    features = read_resolved(teacher_exp / "config.yaml").features
    load_teacher(teacher_exp, features, "cpu")  # the same features: fine
    for key, value, shown in (("low_freq", 40.0, "low_freq: teacher 20.0 vs student 40.0"),
                              ("dither", 0.0, "dither: teacher 1.0 vs student 0.0")):
        with pytest.raises(TeacherCheckError, match=shown):
            load_teacher(teacher_exp, dataclasses.replace(features, **{key: value}), "cpu")


def test_model_input_size_is_checked_against_the_features(tmp_path, standin):
    import dataclasses

    import yaml

    from bccmt.config import ConfigError
    from bccmt.exp import load_embedding_model, read_resolved, save_resolved

    d = make_feats_dir(tmp_path / "d")
    teacher_exp = _train_teacher(tmp_path, d)
    conf = read_resolved(teacher_exp / "config.yaml")
    save_resolved(conf.config, dataclasses.replace(conf.features, num_mel_bins=40), conf.path)
    with pytest.raises(ConfigError, match="takes 80 fbank bins but the features have num_mel_bins 40"):
        load_embedding_model(teacher_exp)
    fbank = yaml.safe_load((d / "fbank.yaml").read_text())
    (d / "fbank.yaml").write_text(yaml.safe_dump({**fbank, "num_mel_bins": 40}))
    with pytest.raises(ConfigError, match=r"fbank.yaml: the model takes 80 fbank bins"):
        run_training(small_config(), d, tmp_path / "other", device="cpu")


def test_layer_pairs_are_checked():
    from bccmt.kd.teacher import default_pairs

    torch.manual_seed(0)
    student = StandInNet(StandInConfig(channels=8, heads=(1, 2), embedding_dim=6))  # 2 maps
    teacher = freeze(StandInNet(StandInConfig(heads=(2, 4, 4), reduction=(4, 2, 2))))  # 3 maps
    with pytest.raises(TeacherCheckError, match=r"kd_layers \[0, 1\] and teacher kd_layers "
                                                r"\[0, 1, 2\] differ in length"):
        default_pairs(student, teacher, None)
    assert default_pairs(student, teacher, [[0, 0], [1, 2]]) == [(0, 0), (1, 2)]
    cfg = small_config(kd={"enabled": True}).kd
    Distiller(teacher, [(0, 0), (1, 2)], cfg).check_maps(student, 40, 80, "cpu")  # valid pairs
    for bad in ([(0, 0), (2, 2)], [(0, 3)], [(-1, 0)]):
        with pytest.raises(TeacherCheckError, match="out of range: student has 2 maps, teacher 3"):
            Distiller(teacher, bad, cfg).check_maps(student, 40, 80, "cpu")


def test_kd_section_defaults_and_checks():
    """KD's defaults live in bccmt.kd.config and equal the recipe's KD config; its checks name
    the key."""
    from pathlib import Path

    from bccmt.config import ConfigError, load_config
    from bccmt.kd.config import KDSection

    conf = Path(__file__).resolve().parents[1] / "egs/voxceleb/conf/bccmt_tiny_kd.yaml"
    assert load_config(conf).kd.weight == KDSection().weight == 10.0
    assert KDSection().problems() == []
    bad = KDSection(weight=-1.0, check_utts=0, layers=[[1, 2, 3]])
    assert bad.problems() == ["kd weights must be >= 0", "kd.check_utts must be >= 1",
                              "kd.layers must be [[student, teacher], ...], got [1, 2, 3]"]
    with pytest.raises(ConfigError, match="kd.check_utts must be >= 1"):
        load_config(conf, ["kd.check_utts=0"])
    with pytest.raises(ConfigError, match="kd.loss"):
        load_config(conf, ["kd.loss=l1"])
