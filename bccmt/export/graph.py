"""The exported computation and its two writers (ONNX and TorchScript, both by tracing).

``export_graph`` makes the stage-4 module (bccmt.inputs.EmbeddingGraph: raw fbank of whole
utterances, (B, T, F) float32 -> silence floor, tiling, chunks and length cut, CMN, the model,
chunk mean -> (B, D)) with an export-mode copy of the model. Everything the recipe does after the
fbank is inside the graph, so a client that feeds the raw Kaldi fbank of a whole file (sherpa-onnx,
the ``bccmt`` command) gets stage 4's embedding, for any length from one frame up.

What the exporters could not do with the training code paths, and what export mode changes
(bccmt.models.base.EmbeddingModel.set_export_mode):
- the TorchScript-based ONNX exporter fails on ``Unfold`` with a data-dependent size (the fast
  relative-position bias); export mode builds the same bias with a gather (index_select);
- torch.export (the dynamo exporter) with a dynamic batch and length stops at the branch on B x T
  that picks the channels_last trunk; export mode always runs NCHW;
- a graph exported without dynamic shapes fixes B and T, and onnxruntime rejects other sizes; both
  are declared dynamic;
- under tracing, Python arithmetic on sizes is frozen into constants: the K/V edge pad is a
  constant r - 1 frames (bccmt.models.attention), and tiling and the chunk indices are computed
  with tensor ops on 0-dim sizes (bccmt.inputs).
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

from bccmt.inputs import EmbeddingGraph

INPUT_NAME = "feats"
OUTPUT_NAME = "embedding"
OPSET = 20


def export_graph(graph: EmbeddingGraph) -> EmbeddingGraph:
    """A copy of stage 4's module with the model in export mode, in eval mode.

    A copy, so the caller's model keeps its training paths. The writers set eval mode again (the
    TorchScript-based ONNX exporter restores the *outer* module's mode on every submodule when it
    is done, which once left batch norm in training mode)."""
    out = copy.deepcopy(graph)
    out.model.set_export_mode()
    return out.eval()


def example_input(n_mels: int) -> torch.Tensor:
    """The tracing example: its sizes become nothing but the first point of the dynamic ranges."""
    return torch.randn(2, 203, n_mels, generator=torch.Generator().manual_seed(0))


def export_onnx(graph: EmbeddingGraph, path: Path, props: Dict[str, str]) -> None:
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
    # the chunk mean reshapes with a computed shape, so the exporter leaves the output's last size
    # symbolic: declare the embedding dim (the parity checks run the file with it)
    out_dims = proto.graph.output[0].type.tensor_type.shape.dim
    out_dims[1].Clear()
    out_dims[1].dim_value = int(graph.model.embedding_dim)
    onnx.checker.check_model(proto, full_check=True)
    onnx.helper.set_model_props(proto, props)
    onnx.save(proto, str(path))


def export_torchscript(graph: EmbeddingGraph, path: Path) -> None:
    """Writes ``graph`` as a traced TorchScript module (no Python code of bccmt needed to load it).

    Under tracing, sizes are recorded as tensor ops, so the module works for any (B, T); the
    tracer's warnings about Python values are silenced because the parity checks at several sizes
    test exactly that."""
    graph.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(graph, example_input(graph.model.n_mels), check_trace=False)
    torch.jit.save(traced, str(path))
