"""A 2-process gloo torchrun run of bccmt.bin.train on CPU (small real BC-CMT model)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from test_train_helpers import make_feats_dir

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_torchrun_two_process_gloo(tmp_path):
    d = make_feats_dir(tmp_path / "d", speakers=4, utts=4)
    conf = tmp_path / "c.yaml"
    conf.write_text(
        "model: {name: bccmt_tiny, args: {channels: [8, 8, 16, 16], blocks: [1, 1, 1, 1],"
        " embedding_dim: 16, pool_bottleneck: 8}}\n"
        "data: {crop_seconds: 0.6, samples_per_epoch: 16}\n"
        "train: {epochs: 2, batch_size: 8, log_every: 1, avg_last: 2, num_threads: 1}\n")
    exp = tmp_path / "exp"
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
           "-m", "bccmt.bin.train", "--config", str(conf), "--train-data", str(d),
           "--exp-dir", str(exp), "--device", "cpu"]
    res = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    log = (exp / "train.log").read_text()
    assert "world size 2" in log and "2 steps/epoch of 8 crops (4 per rank)" in log
    assert log.count("epoch 2 done") == 1  # rank 0 alone writes the log and the checkpoints
    final = torch.load(exp / "models/final.pt", weights_only=True)
    assert final["epochs_averaged"] == [1, 2] and len(final["spk2idx"]) == 4
    # rerunning the same command on a finished exp dir resumes, trains nothing, exits 0
    res = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "resuming from" in (exp / "train.log").read_text()
