"""KD diagnostics in training: lambda = 0 is the plain student, map-KL monitor, teacher checkpoints."""

import math

import pytest
import torch

from bccmt.kd.attention_loss import map_divergence
from bccmt.kd.diagnostics import clean_indices, fixed_crops, map_entropy, model_maps
from bccmt import exp
from bccmt.features import load_fbank_config
from bccmt.train import checkpoint as ckpt
from bccmt.train.data import CropDataset
from bccmt.train.trainer import TrainError, run_training
from test_train_helpers import make_feats_dir, small_config, standin  # noqa: F401 (fixture)


@pytest.fixture
def teacher_run(tmp_path, standin):
    """(data dir, teacher exp) - a stand-in teacher of 4 epochs keeping epochs 2, 3, 4."""
    d = make_feats_dir(tmp_path / "d")
    cfg = small_config(train={"epochs": 4, "keep_last": 2, "keep_every": 2})
    run_training(cfg, d, tmp_path / "teacher", device="cpu")
    return d, tmp_path / "teacher"


def _student(tmp_path, d, name, teacher=None, **kd):
    cfg = small_config(kd={"check_utts": 24, "check_p_value": None, **kd})
    out = run_training(cfg, d, tmp_path / name, teacher_exp=teacher, device="cpu")
    return out["history"], ckpt.load_state(tmp_path / name / "models/epoch_2.pt")


def _same_training_state(a, b) -> bool:
    same = [torch.equal(a[p][k], b[p][k]) for p in ("model", "head") for k in a[p]]
    opt_a, opt_b = a["optimizer"]["state"], b["optimizer"]["state"]
    same += [torch.equal(opt_a[i][k], opt_b[i][k]) for i in opt_a for k in ("exp_avg", "exp_avg_sq")]
    return all(same)


def test_lambda_zero_trains_the_plain_students_weights(tmp_path, teacher_run):
    d, teacher = teacher_run
    _, plain = _student(tmp_path, d, "plain")
    h_mon, plain_mon = _student(tmp_path, d, "plain_monitor", teacher, monitor_utts=16)
    h_zero, zero = _student(tmp_path, d, "kd0", teacher, enabled=True, weight=0.0, monitor_utts=16)
    _, kd1 = _student(tmp_path, d, "kd1", teacher, enabled=True, weight=1.0)
    assert _same_training_state(plain, plain_mon)  # the monitor changes nothing
    assert _same_training_state(plain, zero)  # nor do the teacher, its check and a 0-weight term
    assert not _same_training_state(plain, kd1)  # (the comparison can fail)
    assert h_zero[-1]["attn"] > 0 and h_zero[-1]["kd_share"] == 0.0
    assert h_zero[-1]["map_kl"] == h_mon[-1]["map_kl"] > 0


def test_monitor_measures_the_kl_of_the_epoch_checkpoint(tmp_path, teacher_run):
    d, teacher = teacher_run
    hist, _ = _student(tmp_path, d, "plain", teacher, monitor_utts=16, layers=[[1, 1]])
    last = hist[-1]
    assert {"map_kl", "map_kl_default", "map_kl_0_0", "map_kl_1_1"} <= set(last)
    assert last["map_kl"] == last["map_kl_1_1"]  # distilled pairs (kd.layers) ...
    assert last["map_kl_default"] == pytest.approx((last["map_kl_0_0"] + last["map_kl_1_1"]) / 2)
    student, _ = exp.load_embedding_model(tmp_path / "plain", checkpoint="epoch_2.pt")
    t_model, _ = exp.load_embedding_model(teacher)
    cfg = small_config()
    crops = fixed_crops(CropDataset(d, cfg.data, load_fbank_config(d / "fbank.yaml"), seed=123),
                        16)  # any training seed
    s_maps, t_maps = (model_maps(m, crops, "cpu", 1) for m in (student, t_model))
    assert last["map_kl_0_0"] == pytest.approx(float(map_divergence(s_maps[0], t_maps[0])), rel=1e-6)
    assert [h["epoch"] for h in hist] == [1.0, 2.0]


def test_teacher_checkpoint_and_kept_epochs(tmp_path, teacher_run, caplog):
    d, teacher = teacher_run
    kept = [e for e, _ in ckpt.epoch_checkpoints(teacher / "models")]
    assert kept == [2, 3, 4]  # keep_last 2 plus every 2nd epoch
    mid, _ = exp.load_embedding_model(teacher, checkpoint="epoch_2.pt")
    state = ckpt.load_state(teacher / "models/epoch_2.pt")["model"]
    assert all(torch.equal(v, state[k]) for k, v in mid.state_dict().items())
    caplog.set_level("INFO")
    _student(tmp_path, d, "kd_mid", teacher, enabled=True, teacher_checkpoint="epoch_2.pt")
    assert "models/epoch_2.pt" in caplog.text
    with pytest.raises(ckpt.CheckpointError, match=r"epoch_1.pt: no such checkpoint \(kept: "
                                                   r"epoch_2.pt, epoch_3.pt, epoch_4.pt"):
        _student(tmp_path, d, "kd_gone", teacher, enabled=True, teacher_checkpoint="epoch_1.pt")
    with pytest.raises(ckpt.CheckpointError, match="expected final.pt or epoch_N.pt"):
        exp.load_final(teacher, "../teacher/models/epoch_2.pt")
    with pytest.raises(TrainError, match="kd.monitor_utts > 0"):
        _student(tmp_path, d, "no_use", teacher)


def test_map_entropy_relative_to_log_tk():
    uniform = torch.full((2, 3, 5, 4), 0.25)
    onehot = torch.zeros(1, 1, 2, 4)
    onehot[..., 0] = 1.0
    assert map_entropy(uniform) == pytest.approx(1.0)
    assert map_entropy(onehot) == 0.0
    half = torch.tensor([[[[0.5, 0.5, 0.0, 0.0]]]])  # H = log 2 of log 4
    assert map_entropy(half) == pytest.approx(math.log(2) / math.log(4))
    assert math.isnan(map_entropy(torch.ones(1, 1, 3, 1)))


def test_monitor_crops_skip_augmented_copies():
    utts = ["id1/a-b/00001", "id1/a-b/00001-reverb", "id1/a-b/00002", "id1/a-b/00002-noise",
            "id2/c/00001-babble"]  # the last one is no copy: id2/c/00001 is not in the set
    assert clean_indices(utts) == [0, 2, 4]
