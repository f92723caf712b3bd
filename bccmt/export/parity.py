"""Parity of an exported model with the PyTorch model it came from.

The reference is stage 4's module (bccmt.inputs.EmbeddingGraph with the model's normal forward,
channels_last for large batches); the exported graph is the same module with the model in export
mode. Both get the same raw features. For every batch size in ``BATCHES`` and length in ``FRAMES``
(70 ms, tiled, to 30 s, and 30.01 s: two chunks), every embedding must have cosine >=
``MIN_COSINE`` with the reference and a largest absolute error <= ``MAX_ERR_OVER_NORM`` times the
reference's norm.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

FRAMES = (7, 30, 100, 301, 1000, 3000, 3001)
BATCHES = (1, 4)
MIN_COSINE = 0.99999
MAX_ERR_OVER_NORM = 1e-4

Runner = Callable[[np.ndarray], np.ndarray]  # (B, T, F) float32 -> (B, D)


@dataclasses.dataclass
class ParityReport:
    """Worst case over all inputs of one exported format."""
    name: str                       # onnx | onnx_int8 | torchscript
    max_cosine_deficit: float       # max over embeddings of 1 - cosine(reference, exported)
    max_err_over_norm: float        # max over embeddings of max|ref - exp| / ||ref||
    batches: Sequence[int]
    frames: Sequence[int]
    gated: bool = True              # False: reported only (int8), never refused

    @property
    def passed(self) -> bool:
        return (1.0 - self.max_cosine_deficit >= MIN_COSINE
                and self.max_err_over_norm <= MAX_ERR_OVER_NORM)

    def to_dict(self) -> Dict[str, object]:
        d = {k: v for k, v in dataclasses.asdict(self).items() if k != "name"}
        d.update(batches=list(self.batches), frames=list(self.frames), passed=self.passed,
                 limits={"min_cosine": MIN_COSINE, "max_err_over_norm": MAX_ERR_OVER_NORM})
        return d

    def describe(self) -> str:
        return (f"{self.name}: max 1-cosine {self.max_cosine_deficit:.2e} (limit "
                f"{1 - MIN_COSINE:.0e}), max |err|/norm {self.max_err_over_norm:.2e} (limit "
                f"{MAX_ERR_OVER_NORM:.0e}) over batch {list(self.batches)} x frames "
                f"{list(self.frames)}")


def parity_inputs(n_mels: int, pool: Optional[np.ndarray] = None, seed: int = 0,
                  batches=BATCHES, frames=FRAMES) -> List[np.ndarray]:
    """(B, T, n_mels) float32 inputs for every (B, T). ``pool`` (N, n_mels): real fbank frames
    to cut them from (N >= max(B) * max(T)); otherwise seeded log-Mel-like random values."""
    rng = np.random.default_rng(seed)
    out = []
    for b in batches:
        for t in frames:
            if pool is not None:
                starts = rng.integers(0, pool.shape[0] - t + 1, size=b)
                x = np.stack([pool[s:s + t] for s in starts])
            else:
                level = rng.normal(-2.0, 3.0, size=(b, 1, n_mels))
                x = level + rng.normal(0.0, 2.0, size=(b, t, n_mels))
            out.append(np.ascontiguousarray(x, dtype=np.float32))
    return out


def torch_reference(graph) -> Runner:
    """Stage 4's module (bccmt.inputs.EmbeddingGraph) as a runner on raw fbank."""
    import torch

    def run(feats: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return graph(torch.from_numpy(feats)).numpy()
    return run


def compare(reference: np.ndarray, got: np.ndarray) -> tuple:
    """(max 1 - cosine, max of max|err| / ||reference||) over the rows of two (B, D) arrays."""
    ref = reference.astype(np.float64)
    out = got.astype(np.float64)
    if ref.shape != out.shape or not np.all(np.isfinite(out)):
        return float("inf"), float("inf")
    norm = np.linalg.norm(ref, axis=1)
    cos = (ref * out).sum(1) / (norm * np.linalg.norm(out, axis=1))
    return float(np.max(1.0 - cos)), float(np.max(np.abs(ref - out).max(1) / norm))


def check_parity(name: str, reference: Runner, exported: Runner, inputs: List[np.ndarray],
                 gated: bool = True) -> ParityReport:
    """Runs both on every input and reports the worst case (see ParityReport.passed)."""
    deficit, err = 0.0, 0.0
    for x in inputs:
        d, e = compare(reference(x), exported(x))
        deficit, err = max(deficit, d), max(err, e)
    return ParityReport(name, deficit, err, sorted({x.shape[0] for x in inputs}),
                        sorted({x.shape[1] for x in inputs}), gated)


def torchscript_runner(path) -> Runner:
    import torch

    module = torch.jit.load(str(path), map_location="cpu")

    def run(feats: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(feats)).numpy()
    return run
