"""metadata.json of an export dir, and the metadata_props of the ONNX files.

metadata.json (read by bccmt.runtime.model, which documents its keys) holds everything needed to
score like the recipe: the feature config at extraction settings (dither 0), the embedding dim,
the training mean that cosine scoring subtracts and the EER / minDCF(0.01) thresholds with the
trial list they came from (exp/<m>/scores/<trials>.cosine.result, stage 5-6), the commit, the
model name and the exp name.

sherpa-onnx keys. sherpa-onnx's speaker-embedding extractor reads these metadata_props from the
ONNX file (sherpa-onnx/csrc/speaker-embedding-extractor-model.cc and the
SpeakerEmbeddingExtractorModelMetaData struct): ``framework`` (must be "wespeaker" or
"3d-speaker", else it exits), ``output_dim``, ``sample_rate``, ``normalize_samples`` (0: it scales
samples in [-1, 1] by 32768 before its fbank, as our features expect; 1: it feeds them unscaled),
``language`` (a non-empty string), and optionally ``feature_normalize_type`` ("global-mean": it
subtracts the per-utterance mean; left out here because CMN is inside our graph). We write
framework "wespeaker": the input convention it selects (int16-scale 80-dim Kaldi fbank in,
(1, T, 80) -> (1, D)) is ours. sherpa-onnx computes its own fbank with fixed options
(sherpa-onnx/csrc/features.h: 80 bins, 25/10 ms povey frames, snip_edges false, 20 Hz to
Nyquist - 400 Hz, dither 0), which is the recipe's convention (conf/fbank.yaml), and feeds the
whole file's fbank to the graph, which does everything else stage 4 does: its embeddings are the
recipe's (tests/test_clients.py).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import yaml

from bccmt.exp import ExpLayout
from bccmt.io.scores import read_result
from bccmt.io.vectors import read_vectors

logger = logging.getLogger(__name__)
PREFERRED_TRIALS = ("vox1_O_cleaned", "vox1_O")  # picked among several lists, in this order


class MetadataError(RuntimeError):
    """Missing or inconsistent recipe results; the message names the files."""


def pick_cosine_result(exp_dir: Path, trials_name: Optional[str]) -> Optional[Path]:
    """exp/<m>/scores/<trials>.cosine.result: the named one, the only one, or a preferred one."""
    layout = ExpLayout(exp_dir)
    scores, found = layout.scores, layout.results_by_trials("cosine")
    if trials_name:
        if trials_name not in found:
            raise MetadataError(f"{scores}: no {trials_name}.cosine.result (have: "
                                f"{', '.join(found) or 'none'})")
        return found[trials_name]
    if not found:
        return None
    if len(found) == 1:
        return next(iter(found.values()))
    for name in PREFERRED_TRIALS:
        if name in found:
            return found[name]
    raise MetadataError(f"{scores}: several cosine results ({', '.join(found)}); "
                        "choose one with --trials-name")


def _mean_scp(exp_dir: Path, recorded: str) -> Path:
    """The training embeddings a result names (relative to the recipe dir), or the same set
    under this exp dir."""
    path = Path(recorded)
    if path.is_file():
        return path
    local = ExpLayout(exp_dir).xvector_scp(path.parent.name)
    if local.is_file():
        return local
    raise MetadataError(f"training embeddings {recorded} (the cosine mean) not found, "
                        f"nor {local}")


def scoring_section(exp_dir: Path, trials_name: Optional[str] = None) -> Optional[Dict]:
    """The cosine backend of the recipe: training mean, thresholds and their trial list."""
    path = pick_cosine_result(exp_dir, trials_name)
    if path is None:
        logger.warning("%s has no *.cosine.result (stage 5): exporting without "
                       "thresholds; bccmt verify will refuse", ExpLayout(exp_dir).scores)
        return None
    r = read_result(path)
    scp = _mean_scp(exp_dir, str(r.get("backend_info", {}).get("train_embeddings", "")))
    keys, emb = read_vectors(scp)
    mean = emb.astype(np.float64).mean(axis=0)  # the mean score_trials subtracts
    fields = ("trials_name", "trials", "num_target", "num_nontarget", "eer_percent",
              "eer_threshold", "min_dcf_p0.01", "min_dcf_p0.01_threshold")
    missing = [f for f in fields if f not in r]
    if missing:
        raise MetadataError(f"{path}: missing {', '.join(missing)}")
    return {"backend": "cosine", "result_file": str(path), **{f: r[f] for f in fields},
            "accept": "score > threshold", "length_norm": True,
            "mean_source": str(scp), "num_mean_embeddings": len(keys),
            "mean": [float(v) for v in mean]}


def extract_config(exp_dir: Path, eval_set: Optional[str]):
    """The ExtractConfig stage 4 used on the exp's evaluation set (its extract.yaml), or the
    defaults: the graph is exported with the same chunk length and length quantum."""
    from bccmt.embed import ExtractConfig

    if not eval_set:
        return ExtractConfig()
    info = ExpLayout(exp_dir).embeddings(eval_set).extract_info
    if not info.is_file():
        return ExtractConfig()
    d = yaml.safe_load(info.read_text(encoding="utf-8")) or {}
    fields = {f.name for f in dataclasses.fields(ExtractConfig)}
    return ExtractConfig(**{k: v for k, v in d.items() if k in fields})


def inputs_section(graph, extract_cfg) -> Dict:
    """How the graph turns raw fbank into model inputs (for information: it is all inside)."""
    return {"min_frames": graph.min_frames, "max_chunk_frames": graph.max_chunk_frames,
            "length_quantum": graph.length_quantum, "inside_graph": True,
            "feed": "raw log-Mel fbank of the whole file, (1, T, F) or (B, T, F) of equal T"}


def onnx_props(meta: Dict) -> Dict[str, str]:
    """metadata_props of the ONNX files: sherpa-onnx's keys (see the module docstring) and ours."""
    return {
        "framework": "wespeaker",
        "output_dim": str(meta["embedding_dim"]),
        "sample_rate": str(meta["sample_rate"]),
        "normalize_samples": "0",
        "language": "multilingual",
        "producer": "bccmt",
        "model_name": str(meta["model_name"]),
        "commit": str(meta["commit"]),
        "feature_config": json.dumps(meta["features"], sort_keys=True),
        "exp_name": str(meta["exp_name"]),
        "input": "raw Kaldi log-Mel fbank of the whole file (B, T, num_mel_bins) float32, dither "
                 "0 (feature_config); silence floor, tiling, chunking, CMN are inside the graph",
        "output": "(B, embedding_dim) float32 speaker embeddings",
    }


def now_utc() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
