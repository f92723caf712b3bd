"""Size, compute and latency measurements of embedding models (no classifier/margin head).

- count_parameters(model): trainable + frozen parameters of the embedding model itself.
- count_flops(model, seconds): FLOPs (= 2 x multiply-accumulates) of one forward pass on a
  (1, 100*seconds, n_mels) input, counted by torch.utils.flop_counter.FlopCounterMode. It counts
  matrix products and convolutions (incl. the attention matmuls); normalisation, softmax and
  element-wise ops are not counted, as in most papers' FLOP tables.
- time_forward(model, frames, threads, ...): batch-1 latencies under torch.inference_mode.
"""

from __future__ import annotations

import statistics
import time
from typing import List

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

FRAMES_PER_SECOND = 100  # 10 ms frame shift


def seconds_to_frames(seconds: float) -> int:
    return int(round(seconds * FRAMES_PER_SECOND))


def count_parameters(model: nn.Module) -> int:
    """Number of parameters of the embedding model (margin heads are separate modules)."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, seconds: float = 1.0) -> int:
    """FLOPs (2 x MACs) of one eval-mode forward pass on ``seconds`` of input at batch 1."""
    n_mels = getattr(model, "n_mels", 80)
    device = next(model.parameters()).device
    feats = torch.zeros(1, seconds_to_frames(seconds), n_mels, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(feats)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def time_forward(model: nn.Module, frames: int, threads: int = 1, warmup: int = 5,
                 runs: int = 20, device: str = "cpu") -> List[float]:
    """Latencies in ms of ``runs`` batch-1 forward passes on (1, frames, n_mels), after warm-up.

    CPU: torch.set_num_threads(threads) for the duration of the call. CUDA: synchronised timing.
    The model is put in eval mode (and left there)."""
    model.eval()
    n_mels = getattr(model, "n_mels", 80)
    feats = torch.randn(1, frames, n_mels, device=device)
    cuda = device.startswith("cuda")
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    times = []
    try:
        with torch.inference_mode():
            for i in range(warmup + runs):
                if cuda:
                    torch.cuda.synchronize()
                start = time.perf_counter()
                model(feats)
                if cuda:
                    torch.cuda.synchronize()
                if i >= warmup:
                    times.append((time.perf_counter() - start) * 1000.0)
    finally:
        torch.set_num_threads(old_threads)
    return times


def median(values: List[float]) -> float:
    return float(statistics.median(values))
