"""The VoxCeleb schedules (egs/voxceleb/conf/voxceleb) take real steps: BC-CMT-Base, then
BC-CMT-Tiny + KD from it, from the real config files with size overrides only (a few steps of 4
crops of 2 s on a 4-speaker data dir, the warm-up and the margin ramp squeezed into those steps),
SGD, SpecAugment and 2 loader workers as configured. The 5,994-class head is the scale benchmark's
(bccmt.studies.scale); here the AAM head has the data's 4 speakers."""

import logging
import math
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from bccmt.config import ConfigError, load_config
from bccmt.exp import ExpLayout, load_final, read_resolved
from bccmt.studies.scale_training import read_steps, train_steps
from bccmt.train import checkpoint as ckpt
from bccmt.train.data import CropDataset
from bccmt.train.schedule import schedule_warnings
from test_train_helpers import make_feats_dir

CONF = Path(__file__).resolve().parents[1] / "egs" / "voxceleb" / "conf" / "voxceleb"
SPEAKERS = 4
# sizes only: 2 epochs of 3 steps of 4 crops; the 6-epoch warm-up takes the first epoch and the
# margin ramp (epochs 20-40) epochs 0.5-1.5, so the log shows both; workers kept (2 here)
SIZE = ["train.epochs=2", "data.samples_per_epoch=12", "train.batch_size=4", "train.log_every=1",
        "optim.warmup_epochs=1", "head.margin_start_epoch=0.5", "head.margin_end_epoch=1.5",
        "data.num_workers=2"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_feats_dir(tmp_path_factory.mktemp("vox") / "d", speakers=SPEAKERS, utts=4,
                          min_frames=150, max_frames=320)


@pytest.fixture(scope="module")
def base_run(data_dir, tmp_path_factory):
    """(exp dir, [(pid, worker id, masked bins, masked frames)] per crop the loader made):
    conf/voxceleb/bccmt_base.yaml through the training command's main(), in this process so that
    a spy on CropDataset.__getitem__ (inherited by the forked workers) sees every crop."""
    from bccmt.bin.train import main

    exp = tmp_path_factory.mktemp("exp") / "bccmt_base"
    spy_file = exp.parent / "crops.txt"
    real = CropDataset.__getitem__

    def spy(self, index):
        x, y = real(self, index)
        info = torch.utils.data.get_worker_info()
        zero = x == 0
        with open(spy_file, "a") as f:
            f.write(f"{os.getpid()} {info.id if info else -1} {int(zero.all(0).sum())} "
                    f"{int(zero.all(1).sum())}\n")
        return x, y

    root = logging.getLogger()
    handlers, level, threads = root.handlers[:], root.level, torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(CropDataset, "__getitem__", spy)
        try:
            rc = main(["--config", str(CONF / "bccmt_base.yaml"), "--train-data", str(data_dir),
                       "--exp-dir", str(exp), "--device", "cpu", "--num-threads", "2",
                       "--set", *SIZE])
        finally:
            for h in root.handlers:
                if h not in handlers:
                    h.close()
            root.handlers[:] = handlers
            root.setLevel(level)
            torch.set_num_threads(threads)
    assert rc == 0, ExpLayout(exp).log.read_text()[-3000:]
    crops = [tuple(int(v) for v in line.split()) for line in spy_file.read_text().splitlines()]
    return exp, crops


def test_base_schedule_trains_with_sgd_ramp_specaugment_and_workers(base_run):
    exp, crops = base_run
    layout = ExpLayout(exp)
    conf = read_resolved(layout.config)
    assert conf.model_name == "bccmt_base"
    optim = conf.config["optim"]
    assert (optim["name"], optim["lr"], optim["momentum"], optim["nesterov"],
            optim["weight_decay"]) == ("sgd", 0.1, 0.9, True, 0.0001)
    # the optimiser that ran is SGD with Nesterov momentum (its state has momentum buffers)
    state = ckpt.load_state(layout.epoch(2))
    group = state["optimizer"]["param_groups"][0]
    assert group["nesterov"] is True and group["momentum"] == 0.9
    assert group["weight_decay"] == 0.0001
    per_param = list(state["optimizer"]["state"].values())
    assert per_param and all("momentum_buffer" in s and "exp_avg" not in s for s in per_param)

    log_text = layout.log.read_text()
    assert "never reaches" not in log_text and "the margin ends at" not in log_text
    # per-step lr and margin (the lr logged is the next step's): warm-up to 0.1 over epoch 1,
    # exponential decay to final_lr over epoch 2; the margin ramps from 0 to 0.2 in epochs 0.5-1.5
    steps = read_steps(exp, 6)
    assert steps["lrs"] == pytest.approx([0.0333, 0.0667, 0.1, 0.00794, 0.00063, 5e-5], rel=0.01)
    assert steps["margins"] == pytest.approx([0.0, 0.0, 0.033, 0.1, 0.167, 0.2], abs=1e-3)
    hist = ckpt.read_history(exp)
    assert [h["epoch"] for h in hist] == [1.0, 2.0]
    assert 0 < hist[0]["margin"] < hist[1]["margin"] == pytest.approx(0.2)
    assert hist[0]["lr"] == pytest.approx(0.1) and hist[1]["lr"] == pytest.approx(5e-5)
    losses = steps["losses"] + [h[k] for h in hist for k in ("loss", "aam")]
    assert all(math.isfinite(v) for v in losses), losses

    # SpecAugment is on (config, trainer) and its masks are in the crops
    assert conf.config["data"]["spec_augment"]["enabled"] is True
    assert "SpecAugment: 2 freq masks of 0..8 of 80 bins, 2 time masks of 0..10 of 200 frames" \
        in log_text
    assert len(crops) == 24  # 2 epochs x 12 crops
    assert any(bins > 0 for _, _, bins, _ in crops) and any(fr > 0 for _, _, _, fr in crops)
    assert all(bins <= 16 and fr <= 20 for _, _, bins, fr in crops)
    # the loader ran with 2 worker processes: every crop was made in a worker
    assert "data loader: 2 worker processes" in log_text
    assert {wid for _, wid, _, _ in crops} == {0, 1}
    assert all(pid != os.getpid() for pid, _, _, _ in crops)

    # the AAM head follows the data's speakers
    final = load_final(exp)
    assert final["head_args"]["num_classes"] == SPEAKERS == len(final["spk2idx"])
    assert tuple(final["head_state_dict"]["weight"].shape) == (SPEAKERS, 192)


def test_tiny_kd_schedule_distils_the_base_exp_via_train_steps(base_run, data_dir, tmp_path):
    """conf/voxceleb/bccmt_tiny_kd.yaml with the Base exp as teacher, through the scale
    benchmark's train_steps (the training command in a child process, 2 threads on CPU)."""
    base_exp, _ = base_run
    exp = tmp_path / "bccmt_tiny_kd"
    out = train_steps(CONF / "bccmt_tiny_kd.yaml", data_dir, exp, 3,
                      ["train.batch_size=4", "data.num_workers=2", "kd.check_utts=8",
                       "kd.check_p_value=null"], teacher=base_exp, threads=2)
    assert (out["steps"], out["batch_size"], out["workers"], out["threads"]) == (3, 4, 2, 2)
    assert len(out["losses"]) == 3 and all(math.isfinite(v) for v in out["losses"])
    assert (out["loss_first"], out["loss_last"]) == (out["losses"][0], out["losses"][-1])
    assert len(out["step_times_s"]) == 3 and out["step_time_s"] > 0
    assert out["crops_per_s"] == pytest.approx(4 / out["step_time_s"])
    assert out["max_rss_mb"] > 100 and out["cpu_s"] > 0 and out["wall_s"] > out["step_time_s"]
    assert out["num_classes"] == SPEAKERS
    # one epoch of a 150-epoch schedule: still in the warm-up, no margin yet
    assert out["lr_first"] < out["lr_last"] < 0.1 and out["margin_last"] == 0.0

    # KD from the Base exp: its teacher loaded, checked, and the attention term in every step
    log_text = ExpLayout(exp).log.read_text()
    assert (f"teacher bccmt_base (BCCMT) loaded strictly from {base_exp.resolve()}/models/final.pt"
            in log_text)
    assert "teacher check: accuracy" in log_text
    attn, share = out["terms"]["attn"], out["terms"]["kd_share"]
    assert all(a > 0 for a in attn) and all(0 < s < 1 for s in share)
    for loss, aam, a in zip(out["losses"], out["terms"]["aam"], attn):  # kd.weight 1 (VoxCeleb)
        assert loss == pytest.approx(aam + 1.0 * a, abs=2e-4)
    conf = read_resolved(ExpLayout(exp).config).config
    assert conf["model"]["name"] == "bccmt_tiny" and conf["kd"]["enabled"] is True
    assert conf["optim"]["name"] == "sgd" and conf["data"]["spec_augment"]["enabled"] is True
    hist = ckpt.read_history(exp)
    assert {"attn", "kd_share", "aam"} <= set(hist[0]) and math.isfinite(hist[0]["loss"])


def test_unsqueezed_schedule_warns_and_sizes_squeeze_it():
    cfg = load_config(CONF / "bccmt_base.yaml", ["train.epochs=2"])
    assert schedule_warnings(cfg) == [
        "optim.warmup_epochs 6 > train.epochs 2: the learning rate never reaches optim.lr 0.1 "
        "(peak 0.0333)",
        "head.margin_end_epoch 40 > train.epochs 2: the margin ends at 0, not head.margin 0.2"]
    assert schedule_warnings(load_config(CONF / "bccmt_base.yaml", SIZE)) == []
    for name in ("bccmt_base", "bccmt_tiny", "bccmt_tiny_kd", "ecapa_tdnn"):
        assert schedule_warnings(load_config(CONF / f"{name}.yaml")) == [], name


def test_sgd_and_specaugment_keys_are_checked():
    base = CONF / "bccmt_base.yaml"
    with pytest.raises(ConfigError, match="nesterov: true needs optim.momentum > 0"):
        load_config(base, ["optim.momentum=0"])
    assert load_config(base, ["optim.momentum=0", "optim.nesterov=false"]).optim.momentum == 0
    with pytest.raises(ConfigError, match="spec_augment masks and widths must be >= 0"):
        load_config(base, ["data.spec_augment.time_width=-1"])
    from bccmt.train.trainer import TrainError, _check_spec_augment

    sa = load_config(base).data.spec_augment
    _check_spec_augment(sa, SimpleNamespace(feat_dim=80, crop_frames=200))  # 16 bins, 20 frames
    with pytest.raises(TrainError, match="2 time masks of up to 10 can cover all 20 crop frames"):
        _check_spec_augment(sa, SimpleNamespace(feat_dim=80, crop_frames=20))


def test_margin_head_runs_in_float32_under_autocast():
    """Under float16 autocast (AMP) a target cosine within 2.4e-4 of 1 rounds to 1, where AAM's
    sqrt(1 - cos^2) has an infinite gradient: the head runs in float32 instead."""
    from bccmt.models import build_head
    from bccmt.train.run import Classifier

    torch.manual_seed(0)
    head = build_head("aam", embedding_dim=4, num_classes=3, scale=32.0, margin=0.2)
    net = Classifier(torch.nn.Linear(4, 4, bias=False), head)
    torch.nn.init.eye_(net.model.weight)
    x = head.weight.detach()[[0]] * 1.0001 + 0.003  # cosine to class 0 rounds to 1 in float16
    with torch.autocast("cpu", dtype=torch.float16):
        emb, _, logits = net(x, torch.tensor([0]))
        assert emb.dtype == torch.float16 and logits.dtype == torch.float32
        loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0]))
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())
