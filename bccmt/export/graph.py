"""The exported computation and the two writers (ONNX through torch.export, TorchScript by tracing).

``InferenceGraph`` wraps a trained embedding model: raw fbank as stored in feats.scp, (B, T, F)
float32 -> frames tiled to the model's ``min_frames`` (bccmt.inputs.tile_frames) -> CMN
(bccmt.features.apply_cmn) -> the model in export mode -> (B, D) embeddings. Everything the
recipe does to an input after cutting it (bccmt.inputs.model_inputs) is inside the graph, so an
input of any length from one frame up works, 0.3 s (30 frames) included.

What the exporters could not do with the training code paths, and what export mode changes
(bccmt.models.base.EmbeddingModel.set_export_mode):
- the legacy TorchScript-based ONNX exporter fails on ``Unfold`` with a data-dependent size (the
  fast relative-position bias); export mode builds the same bias with a gather;
- torch.export with a dynamic batch and length stops at the branch on B x T that picks the
  channels_last trunk; export mode always runs NCHW;
- a graph exported without dynamic shapes fixes B and T, and onnxruntime rejects other sizes; we
  declare both dynamic;
- ``x % n`` with a symbolic int n has no ONNX translation in torch 2.13; tile_frames divides by a
  0-dim tensor instead.
torch.export runs with prefer_deferred_runtime_asserts_over_guards: its symbolic-shape engine cannot
prove some always-true facts about the strided lengths (e.g. min(ceil(T/2), 40 ceil(T/2)) ==
ceil(T/2)) and would otherwise refuse the dynamic length; the parity checks at several lengths are
what shows the graph is right.
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
MAX_BATCH = 1024  # declared range of the dynamic batch dimension
MAX_FRAMES = 6000  # declared range of the dynamic length (60 s); longer inputs are chunked


class InferenceGraph(nn.Module):
    """(B, T, F) raw log-Mel fbank -> (B, D) embeddings: tiling, CMN and the model, export mode.

    Holds a copy of the model, so the caller's model keeps its training paths."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = copy.deepcopy(model).eval().set_export_mode()
        self.min_frames = int(model.min_frames)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.model(apply_cmn(tile_frames(feats, self.min_frames)))


def example_input(n_mels: int) -> torch.Tensor:
    """The tracing example: its sizes become nothing but the first point of the dynamic ranges."""
    return torch.randn(2, 203, n_mels, generator=torch.Generator().manual_seed(0))


def export_onnx(graph: InferenceGraph, path: Path, props: Dict[str, str]) -> None:
    """Writes ``graph`` to ``path`` as ONNX (opset OPSET, dynamic batch and frames, float32) with
    ``props`` as the model's metadata_props."""
    import onnx

    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    frames = torch.export.Dim("frames", min=2, max=MAX_FRAMES)
    x = example_input(graph.model.n_mels)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and trace chatter
        exported = torch.export.export(
            graph, (x,), dynamic_shapes={"feats": {0: batch, 1: frames}}, strict=False,
            prefer_deferred_runtime_asserts_over_guards=True)
        program = torch.onnx.export(exported, dynamo=True, opset_version=OPSET,
                                    input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                    verbose=False)
    proto = program.model_proto
    _name_dynamic_dims(proto)
    onnx.checker.check_model(proto)
    onnx.helper.set_model_props(proto, props)
    onnx.save(proto, str(path))


def _name_dynamic_dims(proto) -> None:
    """Renames the exporter's symbolic dims (s24, s66, ...) of the input and output to
    "batch" and "frames", the names a user of the file sees."""
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    names = {dims[0].dim_param: "batch", dims[1].dim_param: "frames"}
    for value in list(proto.graph.input) + list(proto.graph.output):
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in names:
                dim.dim_param = names[dim.dim_param]


def export_torchscript(graph: InferenceGraph, path: Path) -> None:
    """Writes ``graph`` as a traced TorchScript module (no Python code of bccmt needed to load it).

    Under tracing, sizes are recorded as tensor ops, so the module works for any (B, T); the
    tracer's warnings about Python values are silenced because the parity checks at several sizes
    test exactly that."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(graph, example_input(graph.model.n_mels), check_trace=False)
    torch.jit.save(traced, str(path))
