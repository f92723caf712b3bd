"""The exported computation and its two writers (ONNX and TorchScript, both by tracing).

``InferenceGraph`` wraps a trained embedding model: raw fbank as stored in feats.scp, (B, T, F)
float32 -> frames tiled to the model's ``min_frames`` (bccmt.inputs.tile_frames) -> CMN
(bccmt.features.apply_cmn) -> the model in export mode -> (B, D) embeddings. Everything the
recipe does to an input after cutting it (bccmt.inputs.model_inputs) is inside the graph, so an
input of any length from one frame up works, 0.3 s (30 frames) included.

What the exporters could not do with the training code paths, and what export mode changes
(bccmt.models.base.EmbeddingModel.set_export_mode):
- the TorchScript-based ONNX exporter fails on ``Unfold`` with a data-dependent size (the fast
  relative-position bias); export mode builds the same bias with a gather (index_select);
- torch.export (the dynamo exporter) with a dynamic batch and length stops at the branch on B x T
  that picks the channels_last trunk; export mode always runs NCHW;
- a graph exported without dynamic shapes fixes B and T, and onnxruntime rejects other sizes; both
  are declared dynamic;
- under tracing, Python arithmetic on sizes is frozen into constants: the K/V edge pad is a
  constant r - 1 frames (bccmt.models.attention) and tile_frames computes with tensor ops.
Which exporter. With export mode both ONNX exporters give graphs that pass the parity checks and
run equally fast in onnxruntime (measured: bccmt_tiny, 10 s input, 1 thread, interleaved runs).
The dynamo exporter (torch.export, prefer_deferred_runtime_asserts_over_guards, then
torch.onnx.export of the program) needs 30-45 CPU seconds for Tiny, most of it in its
symbolic-shape engine (sympy), against 5 s for the TorchScript-based exporter, which traces the
same way as the TorchScript file. We use the latter (deprecated in torch 2.x, present in the pinned
2.13): export stays cheap enough for the tests and stage 7. Two findings for a move to dynamo:
``x % n`` with a symbolic int n has no ONNX translation in torch 2.13 (tile_frames divides by a
0-dim tensor), and torch.export cannot prove some always-true facts about the strided lengths
(e.g. min(ceil(T/2), 40 ceil(T/2)) == ceil(T/2)) without deferred runtime asserts.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Dict

import torch
from torch import nn

from bccmt.features import apply_cmn
from bccmt.inputs import tile_frames

INPUT_NAME = "feats"
OUTPUT_NAME = "embedding"
OPSET = 20


class InferenceGraph(nn.Module):
    """(B, T, F) raw log-Mel fbank -> (B, D) embeddings: tiling, CMN and the model, export mode.

    Holds a copy of the model, so the caller's model keeps its training paths. Always in eval
    mode: the writers set it (the TorchScript-based ONNX exporter restores the *outer* module's
    mode on every submodule when it is done, which once left batch norm in training mode)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = copy.deepcopy(model).set_export_mode()
        self.min_frames = int(model.min_frames)
        self.eval()

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.model(apply_cmn(tile_frames(feats, self.min_frames)))


def example_input(n_mels: int) -> torch.Tensor:
    """The tracing example: its sizes become nothing but the first point of the dynamic ranges."""
    return torch.randn(2, 203, n_mels, generator=torch.Generator().manual_seed(0))


def export_onnx(graph: InferenceGraph, path: Path, props: Dict[str, str]) -> None:
    """Writes ``graph`` to ``path`` as ONNX (opset OPSET, dynamic "batch" and "frames", float32)
    with ``props`` as the model's metadata_props."""
    import onnx

    graph.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation notice and tracer chatter
        torch.onnx.export(graph, (example_input(graph.model.n_mels),), str(path), dynamo=False,
                          opset_version=OPSET, input_names=[INPUT_NAME],
                          output_names=[OUTPUT_NAME], do_constant_folding=True,
                          dynamic_axes={INPUT_NAME: {0: "batch", 1: "frames"},
                                        OUTPUT_NAME: {0: "batch"}})
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    onnx.helper.set_model_props(proto, props)
    onnx.save(proto, str(path))


def export_torchscript(graph: InferenceGraph, path: Path) -> None:
    """Writes ``graph`` as a traced TorchScript module (no Python code of bccmt needed to load it).

    Under tracing, sizes are recorded as tensor ops, so the module works for any (B, T); the
    tracer's warnings about Python values are silenced because the parity checks at several sizes
    test exactly that."""
    graph.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(graph, example_input(graph.model.n_mels), check_trace=False)
    torch.jit.save(traced, str(path))
