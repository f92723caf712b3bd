"""Export one trained exp dir: ONNX and/or TorchScript (+ int8 ONNX), parity-checked, atomically.

Everything is written into a temporary sibling of the output dir; only when every gated parity
check passes (bccmt.export.parity: fp32 ONNX and TorchScript) is it renamed onto the output dir
(an older export there is replaced). A failed check leaves the old output untouched and raises
ParityError naming the format and the figures.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np

from bccmt.export import metadata as md
from bccmt.export.graph import export_graph, export_onnx, export_torchscript
from bccmt.export.parity import (ParityReport, check_parity, parity_inputs, torch_reference,
                                 torchscript_runner)
from bccmt.runtime.model import METADATA_FILE, OnnxEmbedder

logger = logging.getLogger(__name__)
FILES = {"onnx": "model.onnx", "onnx_int8": "model.int8.onnx",
         "torchscript": "model.torchscript.pt"}
FORMATS = ("onnx", "torchscript")


class ParityError(RuntimeError):
    """An exported model disagrees with PyTorch; nothing was written."""


@dataclasses.dataclass
class ExportConfig:
    formats: Sequence[str] = FORMATS   # onnx and/or torchscript
    int8: bool = False                 # also an int8 ONNX (needs onnx in formats)
    int8_method: str = "dynamic"       # dynamic | static (bccmt.export.quantize)
    calib_feats: Optional[str] = None  # feats.scp of training utterances (static int8)
    trials_name: Optional[str] = None  # which <trials>.cosine.result gives the thresholds
    threads: int = 1                   # onnxruntime / torch threads for the parity runs


def _feature_pool(data_dir: Path, frames: int) -> Optional[np.ndarray]:
    """Concatenated real fbank frames of a data dir's feats.scp (>= frames), or None."""
    scp = data_dir / "feats.scp"
    if not scp.is_file():
        return None
    import kaldiio

    from bccmt.io.tables import read_kv

    rows, have = [], 0
    for spec in read_kv(scp).values():
        rows.append(np.asarray(kaldiio.load_mat(spec), dtype=np.float32))
        have += rows[-1].shape[0]
        if have >= frames:
            return np.concatenate(rows)
    return None


def build_metadata(exp_dir: Path, graph, exp_cfg, inputs: Dict, scoring: Optional[Dict]) -> Dict:
    """metadata.json's content (bccmt.runtime.model documents the keys) for an exp's graph."""
    from bccmt.features import for_purpose
    from bccmt.provenance import git_commit

    features = for_purpose(exp_cfg.features, "extraction")
    floor = graph.floor
    return {"format": "bccmt-export", "version": 2, "model_name": exp_cfg.model_name,
            "exp": str(exp_dir), "exp_name": exp_dir.name, "commit": git_commit(),
            "created": md.now_utc(), "embedding_dim": int(graph.model.embedding_dim),
            "sample_rate": features.sample_rate, "features": features.to_dict(),
            # inside the graph, for information: the per-bin log-Mel floor (digital silence;
            # bccmt.features.silence_floor), null for a model trained without dither
            "silence_floor": None if floor is None else [float(v) for v in floor],
            "inputs": inputs, "files": {}, "default_onnx": None, "scoring": scoring,
            "parity": {}}


def _write_formats(stage4, tmp: Path, meta: Dict, cfg: ExportConfig) -> Dict[str, ParityReport]:
    """Exports stage 4's module and checks every asked format into ``tmp``; returns the parity
    reports."""
    from bccmt.export.parity import BATCHES, FRAMES
    from bccmt.export.quantize import calibration_chunks, quantize

    graph = export_graph(stage4)
    reference = torch_reference(stage4)
    pool = None
    if meta["scoring"]:
        pool = _feature_pool(Path(meta["scoring"]["trials"]).parent.parent,
                             max(BATCHES) * max(FRAMES) + 1)
    inputs = parity_inputs(stage4.model.n_mels, pool)
    logger.info("parity inputs: %s", "real fbank frames" if pool is not None else "random")
    reports = {}
    if "onnx" in cfg.formats:
        path = tmp / FILES["onnx"]
        export_onnx(graph, path, md.onnx_props(meta))
        reports["onnx"] = check_parity("onnx", reference, OnnxEmbedder(path, cfg.threads), inputs)
    if "torchscript" in cfg.formats:
        path = tmp / FILES["torchscript"]
        export_torchscript(graph, path)
        reports["torchscript"] = check_parity("torchscript", reference, torchscript_runner(path),
                                              inputs)
    if cfg.int8:
        calib = calibration_chunks(cfg.calib_feats) if cfg.calib_feats else None
        path = tmp / FILES["onnx_int8"]
        quantize(tmp / FILES["onnx"], path, cfg.int8_method, calib)
        reports["onnx_int8"] = check_parity("onnx_int8", reference,
                                            OnnxEmbedder(path, cfg.threads), inputs, gated=False)
    return reports


def export_exp(exp_dir, out_dir=None, cfg: ExportConfig = ExportConfig()) -> Path:
    """Exports exp_dir's final model into out_dir (default exp_dir/export); returns out_dir."""
    import torch

    from bccmt.embed import embedding_graph
    from bccmt.exp import ExpLayout, load_embedding_model

    bad = sorted(set(cfg.formats) - set(FORMATS))
    if bad or not cfg.formats:
        raise ValueError(f"unknown or no format(s) {bad}; valid: {', '.join(FORMATS)}")
    if cfg.int8 and "onnx" not in cfg.formats:
        raise ValueError("--int8 quantises the ONNX model: add onnx to --formats")
    exp_dir = Path(exp_dir)
    out_dir = Path(out_dir) if out_dir else ExpLayout(exp_dir).export
    torch.set_num_threads(cfg.threads)
    model, exp_cfg = load_embedding_model(exp_dir)
    scoring = md.scoring_section(exp_dir, cfg.trials_name)
    eval_set = Path(scoring["trials"]).parent.parent.name if scoring else None
    extract_cfg = md.extract_config(exp_dir, eval_set)
    stage4 = embedding_graph(model, exp_cfg.features, extract_cfg).eval()
    meta = build_metadata(exp_dir, stage4, exp_cfg, md.inputs_section(stage4, extract_cfg),
                          scoring)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would outlive the rename
    try:
        reports = _write_formats(stage4, tmp, meta, cfg)
        for r in reports.values():
            logger.info("parity %s -> %s", r.describe(), "ok" if r.passed else
                        ("FAILED" if r.gated else "reported only"))
        failed = [r for r in reports.values() if r.gated and not r.passed]
        if failed:
            raise ParityError(f"{exp_dir}: refusing to write {out_dir}: " +
                              "; ".join(r.describe() for r in failed))
        meta["files"] = {k: FILES[k] for k in reports}
        meta["default_onnx"] = FILES["onnx"] if "onnx" in reports else None
        meta["parity"] = {k: r.to_dict() for k, r in reports.items()}
        (tmp / METADATA_FILE).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("wrote %s (%s)", out_dir, ", ".join(sorted(meta["files"].values())))
    return out_dir


def _replace_dir(src: Path, dst: Path) -> None:
    """Renames src onto dst; an existing dst is moved aside first and removed afterwards."""
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        dst.rename(old)
    src.rename(dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
