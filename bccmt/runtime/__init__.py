"""Inference with an exported model (onnxruntime, numpy, kaldi-native-fbank): no torch.

bccmt.runtime.model loads an export dir (metadata.json + ONNX); bccmt.runtime.commands is what the
``bccmt`` console command (bccmt.bin.cli) runs. Nothing imported from here may import torch: a
test runs the command with torch blocked.
"""
