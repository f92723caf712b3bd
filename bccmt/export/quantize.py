"""int8 versions of an exported ONNX model, with onnxruntime's quantization tools.

- ``dynamic``: weights of MatMul/Gemm/Conv stored as int8, activations quantised on the fly
  (quantize_dynamic); needs no data.
- ``static``: QDQ int8 weights (per channel) and activations, with activation ranges calibrated
  (MinMax) on fbank chunks of training utterances (quantize_static after quant_pre_process).
Which one is better is measured by stage 7 (EER per backend, latency) and reported in the README.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Iterator, List, Optional

import numpy as np

logger = logging.getLogger(__name__)
METHODS = ("dynamic", "static")


def calibration_chunks(feats_scp, num_utts: int = 64, frames: int = 300,
                       seed: int = 0) -> List[np.ndarray]:
    """(1, frames, F) float32 chunks of ``num_utts`` random utterances of a feats.scp (raw fbank,
    as the graph takes it); shorter utterances are used whole."""
    import kaldiio

    from bccmt.io.tables import read_kv

    table = read_kv(feats_scp)
    keys = sorted(table)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(keys), size=min(num_utts, len(keys)), replace=False)
    out = []
    for i in sorted(pick):
        x = np.asarray(kaldiio.load_mat(table[keys[i]]), dtype=np.float32)
        start = int(rng.integers(0, max(1, x.shape[0] - frames + 1)))
        out.append(x[None, start:start + frames])
    return out


class _Reader:
    """onnxruntime CalibrationDataReader over a list of inputs."""

    def __init__(self, input_name: str, chunks: List[np.ndarray]):
        self.input_name = input_name
        self.it: Iterator[np.ndarray] = iter(chunks)

    def get_next(self):
        x = next(self.it, None)
        return None if x is None else {self.input_name: x}


def quantize(src: Path, dst: Path, method: str = "dynamic",
             calib: Optional[List[np.ndarray]] = None) -> None:
    """Writes an int8 version of the ONNX model ``src`` to ``dst`` (see the module docstring)."""
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                          quant_pre_process, quantize_dynamic, quantize_static)

    if method not in METHODS:
        raise ValueError(f"unknown int8 method {method!r}; valid: {', '.join(METHODS)}")
    if method == "static" and not calib:
        raise ValueError("static int8 needs calibration features (--calib-feats)")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer logs a line (or a proto dump) per tensor
    try:
        if method == "dynamic":
            quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
            return
        with tempfile.TemporaryDirectory(dir=dst.parent) as tmp:
            pre = Path(tmp) / "pre.onnx"
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
            quantize_static(str(pre), str(dst), _Reader("feats", calib),
                            quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax)
    finally:
        root.setLevel(level)
    logger.info("static int8: calibrated on %d chunks", len(calib))
