"""The CUDA code paths: AMP training, KD on GPU, torchrun with nccl, extraction and GPU latency.

Skipped on machines without CUDA (CI has none); run them on a GPU machine with
``python -m pytest tests/test_cuda.py -v -rs`` (meant to take about a minute on one GPU).
"""

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from test_train_helpers import make_feats_dir, small_config, standin  # noqa: F401 (fixture)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

ROOT = Path(__file__).resolve().parents[1]
# a small real BC-CMT (as in test_train_ddp.py): exercises the real attention/conv kernels fast
TINY_ARGS = ("{channels: [8, 8, 16, 16], blocks: [1, 1, 1, 1], embedding_dim: 16, "
             "pool_bottleneck: 8}")


def _env():
    return dict(os.environ, OMP_NUM_THREADS="1",
                PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _run(cmd, cwd, timeout=300):
    res = subprocess.run(cmd, env=_env(), cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, res.stderr[-4000:]
    return res


def _tiny_config(path, extra=""):
    path.write_text(f"model: {{name: bccmt_tiny, args: {TINY_ARGS}}}\n" + extra)
    return path


# (a) AMP training ---------------------------------------------------------------------------------

def test_amp_training_loss_falls_on_cuda(tmp_path, standin):
    from bccmt.exp import load_embedding_model
    from bccmt.train import checkpoint as ckpt
    from bccmt.train.trainer import run_training

    d = make_feats_dir(tmp_path / "d")
    cfg = small_config(train={"epochs": 4, "avg_last": 2}, data={"samples_per_epoch": 48})
    assert cfg.train.amp
    out = run_training(cfg, d, tmp_path / "exp", device="cuda")
    losses = [h["aam"] for h in out["history"]]
    assert all(math.isfinite(v) for v in losses), losses
    assert losses[-1] < 0.8 * losses[0], losses
    state = ckpt.load_state(tmp_path / "exp/models/epoch_4.pt")
    assert state["scaler"] is not None and math.isfinite(state["scaler"]["scale"])  # AMP was on
    final = torch.load(tmp_path / "exp/models/final.pt", weights_only=True)  # no map_location
    assert all(v.device.type == "cpu" for v in final["state_dict"].values())  # CPU-loadable
    model, _ = load_embedding_model(tmp_path / "exp", device="cuda")
    with torch.inference_mode():
        emb = model(torch.randn(2, 100, 80, device="cuda"))
    assert emb.shape == (2, 12) and torch.isfinite(emb).all()


def test_cli_train_real_model_amp_cuda(tmp_path):
    """bccmt.bin.train --device cuda on BC-CMT: 2 s crops x batch 16 = 3200 frames, so the
    channels_last trunk (CHANNELS_LAST_MIN_FRAMES) runs under float16 autocast too."""
    from bccmt.exp import load_embedding_model
    from bccmt.train import checkpoint as ckpt

    d = make_feats_dir(tmp_path / "d", speakers=4, utts=4, min_frames=150, max_frames=300)
    conf = _tiny_config(tmp_path / "c.yaml",
                        "data: {crop_seconds: 2.0, samples_per_epoch: 32}\n"
                        "train: {epochs: 2, batch_size: 16, log_every: 1, avg_last: 2, "
                        "num_threads: 1}\n")
    exp = tmp_path / "exp"
    _run([sys.executable, "-m", "bccmt.bin.train", "--config", str(conf), "--train-data", str(d),
          "--exp-dir", str(exp), "--device", "cuda"], cwd=tmp_path)
    log = (exp / "train.log").read_text()
    assert "device cuda:0" in log and "epoch 2 done" in log
    state = ckpt.load_state(exp / "models/epoch_2.pt")
    assert state["scaler"] is not None
    assert all(math.isfinite(h["loss"]) for h in state["history"]), state["history"]
    model, _ = load_embedding_model(exp, device="cuda")
    with torch.inference_mode():
        assert torch.isfinite(model(torch.randn(1, 200, 80, device="cuda"))).all()


# (b) KD on GPU ------------------------------------------------------------------------------------

def test_kd_student_with_teacher_on_cuda(tmp_path, monkeypatch):
    import bccmt.train.distill as teacher_mod  # where the training run loads its teacher
    from bccmt.config import load_config
    from bccmt.train.trainer import run_training

    d = make_feats_dir(tmp_path / "d", speakers=4, utts=4)
    common = ("data: {crop_seconds: 0.6, samples_per_epoch: 32}\n"
              "train: {epochs: 2, batch_size: 8, log_every: 2, avg_last: 2, num_threads: 1}\n")
    conf = _tiny_config(tmp_path / "c.yaml", common)
    run_training(load_config(conf), d, tmp_path / "teacher", device="cuda")

    seen = {}
    real_load = teacher_mod.load_teacher

    def spy(*a, **k):
        seen["teacher"], final = real_load(*a, **k)
        seen["before"] = {n: v.clone() for n, v in seen["teacher"].state_dict().items()}
        return seen["teacher"], final

    monkeypatch.setattr(teacher_mod, "load_teacher", spy)
    # a 2-epoch teacher need not beat chance: the check runs (on the GPU) but only logs
    kd_conf = _tiny_config(tmp_path / "kd.yaml", common +
                           "kd: {enabled: true, weight: 1.0, embedding_weight: 0.5, "
                           "check_utts: 16, check_p_value: null}\n")
    out = run_training(load_config(kd_conf), d, tmp_path / "student",
                       teacher_exp=tmp_path / "teacher", device="cuda")
    last = out["history"][-1]
    assert {"attn", "emb", "aam", "loss"} <= set(last)
    assert all(math.isfinite(h[k]) for h in out["history"] for k in ("attn", "emb", "loss"))
    assert last["attn"] > 0
    teacher = seen["teacher"]
    assert next(teacher.parameters()).device.type == "cuda" and not teacher.training
    for n, v in teacher.state_dict().items():
        assert torch.equal(v, seen["before"][n]), n
    assert all(p.grad is None for p in teacher.parameters())
    assert (tmp_path / "student/models/final.pt").is_file()


# (c) torchrun with nccl ---------------------------------------------------------------------------

FORCE_DIST = """\
# One rank cannot form a process group through bccmt.bin.train (world size 1 = plain run), and nccl
# refuses two ranks on one GPU; so on a 1-GPU machine force the distributed path with one rank.
import sys
from bccmt.train import distributed
distributed.DistInfo.enabled = property(lambda self: True)
from bccmt.bin.train import main
sys.exit(main(sys.argv[1:]))
"""


def test_torchrun_nccl(tmp_path):
    ngpu = torch.cuda.device_count()
    d = make_feats_dir(tmp_path / "d", speakers=4, utts=4)
    conf = _tiny_config(tmp_path / "c.yaml",
                        f"data: {{crop_seconds: 0.6, samples_per_epoch: {8 * ngpu}}}\n"
                        f"train: {{epochs: 2, batch_size: {4 * ngpu}, log_every: 1, avg_last: 2, "
                        "num_threads: 1}\n")
    if ngpu > 1:
        target = ["-m", "bccmt.bin.train"]
    else:
        (tmp_path / "force_dist.py").write_text(FORCE_DIST)
        target = [str(tmp_path / "force_dist.py")]
    exp = tmp_path / "exp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={ngpu}", *target, "--config", str(conf), "--train-data", str(d),
           "--exp-dir", str(exp), "--device", "cuda"]
    _run(cmd, cwd=tmp_path)
    log = (exp / "train.log").read_text()
    assert "joined the nccl group on cuda:0" in log, log[-3000:]
    assert f"world size {ngpu}" in log and log.count("epoch 2 done") == 1
    final = torch.load(exp / "models/final.pt", weights_only=True)
    assert final["epochs_averaged"] == [1, 2] and len(final["spk2idx"]) == 4


# (d) extraction on cuda ---------------------------------------------------------------------------

def _rel_err(a, b):
    """Per-embedding max |a - b| over the norm of b, worst embedding."""
    return float(np.max(np.abs(a - b).max(axis=1) / np.linalg.norm(b, axis=1)))


def test_extraction_cuda_matches_cpu(tmp_path):
    """Strict float32 on the GPU (TF32 off) differs from the CPU only in summation order and
    kernel choice (float32 roundoff ~6e-8 per operation): held to 1e-3 of the embedding norm.
    The CLI runs with PyTorch's default flags, under which cuDNN convolutions use TF32 (10-bit
    mantissa: each operand rounded by up to 2^-11 ~ 5e-4, compounding over ~20 layers): held to
    2e-2 of the norm and cosine > 0.9998 with the CPU embedding (1 - cos ~ |diff|^2 / 2), i.e. a
    cosine score moves by ~1e-4, far below what changes a verification decision."""
    from bccmt.embed import ExtractConfig, extract_job
    from bccmt.io.vectors import read_vectors
    from test_extract import make_data, make_exp

    exp = make_exp(tmp_path / "exp")
    data, utts = make_data(tmp_path / "data", [120, 60, 120, 30, 250, 90])
    _, cpu_scp, _ = extract_job(exp, data, tmp_path / "cpu", cfg=ExtractConfig(max_chunk_frames=100))
    keys, cpu = read_vectors(cpu_scp)
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        _, gpu_scp, n = extract_job(exp, data, tmp_path / "gpu",
                                    cfg=ExtractConfig(max_chunk_frames=100, device="cuda"))
    gkeys, gpu = read_vectors(gpu_scp)
    assert n == len(utts) and gkeys == keys and gpu.dtype == np.float32
    strict = _rel_err(gpu, cpu)
    print(f"\nextraction cuda fp32 vs cpu: max |diff| / norm = {strict:.3g}")
    assert strict < 1e-3

    out = tmp_path / "cli"
    _run([sys.executable, "-m", "bccmt.bin.extract_embeddings", "--exp-dir", str(exp), "--data",
          str(data), "--out", str(out), "--device", "cuda", "--max-chunk-frames", "100"],
         cwd=tmp_path)
    ckeys, cli = read_vectors(out / "xvector.scp")
    assert ckeys == keys
    default = _rel_err(cli, cpu)
    cos = np.sum(cli * cpu, 1) / (np.linalg.norm(cli, axis=1) * np.linalg.norm(cpu, axis=1))
    print(f"extraction cuda (CLI, default TF32 flags) vs cpu: max |diff| / norm = {default:.3g}, "
          f"min cosine = {cos.min():.7f}")
    assert default < 2e-2 and cos.min() > 0.9998


# (e) benchmark GPU latency ------------------------------------------------------------------------

def test_benchmark_gpu_latency():
    from bccmt.studies.model_benchmark import BenchmarkConfig, markdown_table, run_benchmark

    cfg = BenchmarkConfig(models=("bccmt_tiny",), seconds=(1, 2), threads=(1,), sweeps=1, runs=3,
                          warmup=1, baseline="bccmt_tiny")
    report = run_benchmark(cfg)
    r = report["results"][0]
    assert set(r["gpu_ms"]) == {"1", "2"}
    assert all(math.isfinite(v) and v > 0 for v in r["gpu_ms"].values()), r["gpu_ms"]
    assert report["machine"]["gpu"]
    assert "GPU 1 s (ms)" in markdown_table(report)
    print(f"\nbccmt_tiny GPU latency (batch 1): {r['gpu_ms']} ms on {report['machine']['gpu']}")
