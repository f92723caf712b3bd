"""Export of trained models for use outside the recipe (stage 7).

bccmt.export.graph (what is exported: tiling + CMN + the model in export mode, and the ONNX /
TorchScript writers), bccmt.export.parity (checks against the PyTorch model), bccmt.export.quantize
(int8 with onnxruntime), bccmt.export.metadata (metadata.json and the ONNX metadata keys),
bccmt.export.pipeline (one exp dir -> exp/<m>/export, atomically). Inference with the result needs
no torch: bccmt.runtime and the ``bccmt`` command.
"""
