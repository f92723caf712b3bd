"""Training: config validation, crops, sampler, schedules, checkpoints, resume and loss decrease."""

import json

import pytest
import torch

from bccmt import exp
from bccmt.train import checkpoint as ckpt
from bccmt.config import ConfigError, build_config, load_config
from bccmt.features import FbankConfig
from bccmt.train.data import CropDataset, EpochBatchSampler, make_spk2idx
from bccmt.train.schedule import lr_factor, margin_at
from bccmt.train.trainer import TrainError, run_training
from test_train_helpers import make_feats_dir, small_config, standin  # noqa: F401 (fixture)


def test_unknown_config_key_fails(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train: {epoch: 3}\n")
    with pytest.raises(ConfigError, match=r"c.yaml.*train\.epoch.*valid: epochs"):
        load_config(path)
    path.write_text("train: {epochs: 3}\n")
    with pytest.raises(ConfigError, match="optim.lrr"):
        load_config(path, ["optim.lrr=0.1"])
    with pytest.raises(ConfigError, match="features"):
        build_config({"features": {}})
    with pytest.raises(ConfigError, match="kl, mse"):
        build_config({"kd": {"loss": "l2"}})
    from bccmt.bin.train import main

    rc = main(["--config", str(path), "--train-data", str(tmp_path), "--exp-dir",
               str(tmp_path / "exp"), "--set", "bogus.key=1"])
    assert rc == 2


def test_overrides_are_typed(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: {name: bccmt_tiny, args: {embedding_dim: 64}}\n")
    cfg = load_config(path, ["train.epochs=7", "optim.lr=0.5", "data.samples_per_epoch=null",
                             "kd.layers=[[0,1],[2,3]]", "model.args.blocks=[1,1,1,1]"])
    assert cfg.train.epochs == 7 and cfg.optim.lr == 0.5 and cfg.data.samples_per_epoch is None
    assert cfg.kd.layers == [[0, 1], [2, 3]]
    assert cfg.model.args == {"embedding_dim": 64, "blocks": [1, 1, 1, 1]}
    with pytest.raises(ConfigError, match="integer"):
        load_config(path, ["train.epochs=2.5"])


def test_crops_cmn_short_policy_and_speaker_map(tmp_path):
    d = make_feats_dir(tmp_path / "d", speakers=3, utts=3, short_frames=40)
    cfg = small_config().data
    ds = CropDataset(d, cfg, FbankConfig(), seed=1)
    assert ds.spk2idx == {"id00000": 0, "id00001": 1, "id00002": 2}
    assert len(ds) == 9 and ds.num_repeated == 3  # 40-frame utts (< 60-frame crop) are tiled
    x, y = ds[(1, 0, 0)]
    assert x.shape == (60, 80) and y == 0
    assert torch.allclose(x.mean(0), torch.zeros(80), atol=1e-4)  # CMN of the crop
    assert torch.equal(x, ds[(1, 0, 0)][0])  # same (epoch, position) -> same crop
    assert not torch.equal(ds[(1, 5, 3)][0], ds[(2, 5, 3)][0])
    drop = CropDataset(d, small_config(data={"short_policy": "drop"}).data, FbankConfig(), seed=1)
    assert len(drop) == 6 and drop.num_repeated == 0
    assert make_spk2idx({"u1": "b", "u2": "a", "u3": "b"}) == {"a": 0, "b": 1}


def test_sampler_shards_global_batches():
    full = EpochBatchSampler(10, 4, seed=3, samples_per_epoch=12)
    full.set_epoch(2)
    batches = list(full)
    assert len(batches) == 3 and all(len(b) == 4 for b in batches)
    ranks = [EpochBatchSampler(10, 4, 3, 12, rank=r, world_size=2) for r in (0, 1)]
    for r in ranks:
        r.set_epoch(2)
    merged = [a + b for a, b in zip(*[list(r) for r in ranks])]
    assert merged == batches  # two ranks see exactly the single-process global batches
    full.set_epoch(3)
    assert list(full) != batches
    with pytest.raises(ValueError, match="divisible"):
        EpochBatchSampler(10, 5, 3, rank=0, world_size=2)


def test_schedules():
    o = small_config(optim={"lr": 0.1, "final_lr": 0.001, "warmup_epochs": 1.0}).optim
    assert lr_factor(0.5, 3, o) == pytest.approx(0.5)
    assert lr_factor(1.0, 3, o) == pytest.approx(1.0)
    assert lr_factor(2.0, 3, o) == pytest.approx(0.1)  # halfway (log scale) to 0.01
    assert lr_factor(3.0, 3, o) == pytest.approx(0.01)
    # warm-up 1, hold the peak, decay over the last 2 of 10 epochs
    w = small_config(optim={"lr": 0.1, "final_lr": 0.001, "warmup_epochs": 1.0,
                            "decay_epochs": 2.0}).optim
    assert [lr_factor(e, 10, w) for e in (0.5, 1.0, 5.0, 8.0, 9.0, 10.0)] == pytest.approx(
        [0.5, 1.0, 1.0, 1.0, 0.1, 0.01])
    w.decay_epochs = 20.0  # longer than the run: decays from the end of the warm-up
    assert lr_factor(5.5, 10, w) == pytest.approx(0.1)
    h = small_config(head={"margin": 0.2, "margin_start_epoch": 1.0, "margin_end_epoch": 3.0}).head
    assert [margin_at(e, h) for e in (0.5, 1.0, 2.0, 3.0, 9.0)] == pytest.approx([0, 0, 0.1, 0.2, 0.2])


def test_loss_falls_and_final_is_average(tmp_path, standin):
    d = make_feats_dir(tmp_path / "d")
    cfg = small_config(train={"epochs": 4, "avg_last": 2}, data={"samples_per_epoch": 48})
    out = run_training(cfg, d, tmp_path / "exp", device="cpu")
    losses = [h["aam"] for h in out["history"]]
    assert losses[-1] < 0.7 * losses[0], losses
    assert out["history"][-1]["acc"] > 0.5
    final = torch.load(tmp_path / "exp/models/final.pt", weights_only=True)
    assert final["epochs_averaged"] == [3, 4] and final["model_name"] == standin
    e3, e4 = (ckpt.load_state(tmp_path / f"exp/models/epoch_{e}.pt") for e in (3, 4))
    w = "out.weight"
    assert torch.allclose(final["state_dict"][w], (e3["model"][w] + e4["model"][w]) / 2)
    model, cfg_d = exp.load_embedding_model(tmp_path / "exp")
    assert not model.training and cfg_d.features.num_mel_bins == 80
    assert cfg_d.config["model"] == {"name": standin, "args": {}}  # registry defaults + overrides
    assert (tmp_path / "exp/spk2idx").read_text().startswith("id00000 0\n")
    # the per-epoch history file holds what training returned, lr and margin included
    hist = ckpt.read_history(tmp_path / "exp")
    assert hist == json.loads(json.dumps(out["history"]))
    assert [h["epoch"] for h in hist] == [1.0, 2.0, 3.0, 4.0]
    assert {"loss", "aam", "acc", "samples_per_s", "lr", "margin"} <= set(hist[-1])


class Killed(Exception):
    pass


def test_resume_after_kill_gives_same_weights(tmp_path, standin, monkeypatch):
    d = make_feats_dir(tmp_path / "d")
    cfg = small_config(train={"epochs": 3}, data={"spec_augment": {"enabled": True}})
    run_training(cfg, d, tmp_path / "straight", device="cpu")

    real_prune = ckpt.prune

    def crash_after_first_checkpoint(models_dir, *keep):
        real_prune(models_dir, *keep)
        raise Killed("simulated kill right after epoch_1.pt")

    monkeypatch.setattr(ckpt, "prune", crash_after_first_checkpoint)
    with pytest.raises(Killed):
        run_training(cfg, d, tmp_path / "resumed", device="cpu")
    assert [e for e, _ in ckpt.epoch_checkpoints(tmp_path / "resumed/models")] == [1]
    monkeypatch.setattr(ckpt, "prune", real_prune)
    out = run_training(cfg, d, tmp_path / "resumed", device="cpu")  # the same command again
    assert [h["epoch"] for h in out["history"]] == [1.0, 2.0, 3.0]
    assert [h["epoch"] for h in ckpt.read_history(tmp_path / "resumed")] == [1.0, 2.0, 3.0]
    a = ckpt.load_state(tmp_path / "straight/models/epoch_3.pt")
    b = ckpt.load_state(tmp_path / "resumed/models/epoch_3.pt")
    for part in ("model", "head"):
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), (part, k)
    assert a["step"] == b["step"] == 12
    # a finished run rerun does no more training
    again = run_training(cfg, d, tmp_path / "resumed", device="cpu")
    assert len(again["history"]) == 3


def test_init_from_loads_weights_only(tmp_path, standin):
    d = make_feats_dir(tmp_path / "d")
    cfg = small_config(train={"epochs": 2})
    run_training(cfg, d, tmp_path / "a", device="cpu")
    cfg1 = small_config(train={"epochs": 1},
                        optim={"lr": 1e-9, "final_lr": 1e-9, "warmup_epochs": 0.0,
                               "schedule": "constant"})
    run_training(cfg1, d, tmp_path / "b", init_from=tmp_path / "a/models/final.pt", device="cpu")
    fa = torch.load(tmp_path / "a/models/final.pt", weights_only=True)["state_dict"]
    eb = ckpt.load_state(tmp_path / "b/models/epoch_1.pt")
    assert eb["epoch"] == 1 and eb["step"] == 4  # a fresh schedule, not a resume
    assert torch.allclose(eb["model"]["out.weight"], fa["out.weight"], atol=1e-6)


def test_missing_fbank_yaml_and_bad_kd_flags(tmp_path, standin):
    d = make_feats_dir(tmp_path / "d", fbank_yaml=False)
    with pytest.raises(TrainError, match="fbank.yaml"):
        run_training(small_config(), d, tmp_path / "exp", device="cpu")
    (d / "fbank.yaml").write_text("num_mel_bins: 80\n")
    with pytest.raises(TrainError, match="teacher-exp"):
        run_training(small_config(kd={"enabled": True}), d, tmp_path / "exp", device="cpu")


@pytest.mark.parametrize("folder", ["conf", "conf/voxceleb"])
def test_recipe_configs_resolve(folder):
    from pathlib import Path

    from bccmt.config import read_raw
    from bccmt.models import list_models

    conf = Path(__file__).resolve().parents[1] / "egs/voxceleb" / folder
    names = ["bccmt_base", "bccmt_tiny", "bccmt_tiny_kd", "ecapa_tdnn"]
    assert sorted(p.stem for p in conf.glob("*.yaml") if "model" in read_raw(p)) == sorted(names)
    cfgs = {n: load_config(conf / f"{n}.yaml") for n in names}
    for n, c in cfgs.items():
        assert c.model.name in list_models(), n
    tiny, kd = cfgs["bccmt_tiny"], cfgs["bccmt_tiny_kd"]
    assert kd.kd.enabled and not tiny.kd.enabled
    for section in ("model", "head", "data", "optim", "train"):  # same seed and schedule
        assert getattr(tiny, section) == getattr(kd, section), section
    # the teacher trains at least as long as the students; the VoxCeleb scale uses every utterance
    assert cfgs["bccmt_base"].train.epochs >= tiny.train.epochs
    scale = {"conf": 320, "conf/voxceleb": None}[folder]
    assert all(c.data.samples_per_epoch == scale for c in cfgs.values())
    assert "features" not in read_raw(conf / "bccmt_tiny.yaml")


def test_config_base_files(tmp_path):
    (tmp_path / "common.yaml").write_text("optim: {lr: 0.5, name: sgd}\ntrain: {epochs: 3}\n")
    (tmp_path / "m.yaml").write_text("base: common.yaml\noptim: {lr: 0.1}\nmodel: {name: bccmt_tiny}\n")
    cfg = load_config(tmp_path / "m.yaml", ["train.epochs=4"])
    assert (cfg.optim.lr, cfg.optim.name, cfg.train.epochs, cfg.model.name) == (0.1, "sgd", 4, "bccmt_tiny")
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="makes a cycle"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("base: nope.yaml\n")
    with pytest.raises(ConfigError, match=r"nope.yaml: no such config file \(the base of .*c.yaml\)"):
        load_config(tmp_path / "c.yaml")


def test_step_accuracy_is_measured_before_the_update():
    """The logged accuracy is the batch's, against the class centres the batch was scored with:
    after a large step the centres of the batch's labels have moved to its embeddings, and an
    accuracy taken then credited that (it read ~50% on never-seen speakers at 5,994 classes)."""
    import types

    from bccmt.models.heads import AAMSoftmax
    from bccmt.train.run import Classifier
    from bccmt.train.trainer import _train_step

    torch.manual_seed(0)
    net = Classifier(torch.nn.Linear(12, 16), AAMSoftmax(16, 500, scale=32.0, margin=0.0))
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    run = types.SimpleNamespace(net=net, ddp=net, distiller=None, optimizer=opt,
                                scaler=torch.amp.GradScaler("cuda", enabled=False),
                                scheduler=torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0),
                                cfg=types.SimpleNamespace(optim=types.SimpleNamespace(grad_clip=0)),
                                use_amp=False)
    feats, labels = torch.randn(8, 12), torch.arange(8) * 60
    emb = net.model(feats).detach()
    before = net.head.accuracy(emb, labels).item()
    out = _train_step(run, feats, labels, margin=0.0)
    after = net.head.accuracy(emb, labels).item()  # same embeddings, the updated centres
    assert after >= before + 0.5  # the step pulls the batch's centres to its embeddings ...
    assert out["acc"].item() == before  # ... and the logged accuracy is the one before it
