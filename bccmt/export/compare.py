"""Accuracy of the exported models beside the recipe's PyTorch results, and the int8 decision.

Stage 7 embeds the backend and evaluation sets from audio with ``bccmt embed`` (fp32 and int8
ONNX) into exp/<m>/export_eval/<precision>/embeddings/<set>, and with sherpa-onnx's extractor
(fp32 ONNX; bccmt.export.clients) into exp/<m>/export_eval/sherpa/embeddings/<set>, and scores
them with local/score.sh, exactly like stages 4-5. This module reads exp/<m>/scores/*.result
(PyTorch) and exp/<m>/export_eval/{fp32,int8,sherpa}/scores/*.result, makes one table, and sets an
export's ``default_onnx`` to the int8 file only if its cosine EER is within INT8_MAX_EER_LOSS
points (absolute) of fp32's on the trial list of its thresholds and, when stage 7's latency table
is given, int8 is also faster than fp32 (a slower int8 model is no default, whatever its EER).
The sherpa-onnx rows are reported only: they take no part in that decision.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Dict, List, Optional

from bccmt.exp import ExpLayout
from bccmt.io.scores import read_result
from bccmt.io.tables import atomic_write
from bccmt.runtime.model import METADATA_FILE, read_metadata

logger = logging.getLogger(__name__)
INT8_MAX_EER_LOSS = 0.2  # EER points (absolute) int8 may lose against fp32 to be the default
RUNTIMES = (("PyTorch", None), ("ONNX fp32", "fp32"), ("ONNX int8", "int8"),
            ("sherpa-onnx fp32", "sherpa"))  # table label, export_eval/<runtime> (None: stage 5)
BACKENDS = ("cosine", "asnorm", "plda")


def collect(exp: Path) -> List[Dict[str, object]]:
    """One row per runtime x trial list x backend found under ``exp``."""
    rows = []
    layout = ExpLayout(exp)
    for runtime, name in RUNTIMES:
        for path in (layout if name is None else layout.export_eval(name)).results():
            r = read_result(path)
            rows.append({"exp": exp.name, "runtime": runtime, "trials": r["trials_name"],
                         "backend": r["backend"], "eer": float(r["eer_percent"]),
                         "dcf01": float(r["min_dcf_p0.01"]),
                         "dcf001": float(r["min_dcf_p0.001"])})
    order = {b: i for i, b in enumerate(BACKENDS)}
    rt = {name: i for i, (name, _) in enumerate(RUNTIMES)}
    rows.sort(key=lambda r: (r["trials"], order.get(r["backend"], 9), rt[r["runtime"]]))
    return rows


def table(rows: List[Dict[str, object]]) -> str:
    head = ("| model | trial list | backend | runtime | EER (%) | minDCF(0.01) | minDCF(0.001) |\n"
            "|---|---|---|---|---|---|---|")
    body = [f"| {r['exp']} | {r['trials']} | {r['backend']} | {r['runtime']} | {r['eer']:.3f} "
            f"| {r['dcf01']:.4f} | {r['dcf001']:.4f} |" for r in rows]
    return "\n".join([head] + body)


def embedding_agreement(exp: Path) -> List[str]:
    """Per set embedded both by stage 4 (exp/<m>/embeddings/<set>) and from audio by an exported
    runtime (export_eval/<runtime>/embeddings/<set>): the min and median cosine of the two
    embeddings of each utterance, one line per runtime and set."""
    import numpy as np

    from bccmt.io.vectors import read_vectors

    lines = []
    layout = ExpLayout(exp)
    for runtime, set_name in layout.export_eval_sets():
        ref_scp = layout.xvector_scp(set_name)
        if not ref_scp.is_file():
            continue
        keys, got = read_vectors(layout.export_eval(runtime).xvector_scp(set_name))
        ref_keys, ref = read_vectors(ref_scp)
        index = {k: i for i, k in enumerate(ref_keys)}
        common = [k for k in keys if k in index]
        if not common:
            continue
        a = got[[keys.index(k) for k in common]].astype(np.float64)
        b = ref[[index[k] for k in common]].astype(np.float64)
        cos = np.minimum(1.0, (a * b).sum(1) / (np.linalg.norm(a, axis=1)
                                                 * np.linalg.norm(b, axis=1)))
        lines.append(f"{exp.name} {runtime} vs stage 4 on {set_name} ({len(common)} "
                     f"utterances): cosine min {cos.min():.6f}, median {np.median(cos):.6f} "
                     f"(1 - cosine: max {1 - cos.min():.1e}, median {1 - np.median(cos):.1e})")
    return lines


def _cosine_eer(rows, runtime: str, trials: str) -> Optional[float]:
    got = [r["eer"] for r in rows if r["runtime"] == runtime and r["backend"] == "cosine"
           and r["trials"] == trials]
    return got[0] if got else None


def int8_speedup(exp: Path, latency: Optional[Dict]) -> Optional[float]:
    """fp32 / int8 ONNX time at the longest input on 1 thread in a benchmark_export JSON."""
    if not latency:
        return None
    fp32, int8 = (latency.get(f"{exp.name} {rt}", {}).get("1", {}) for rt in
                  ("ONNX fp32", "ONNX int8"))
    longest = max(fp32, key=float, default=None)
    if longest is None or longest not in int8:
        return None
    return fp32[longest] / int8[longest]


def choose_default(exp: Path, rows: List[Dict[str, object]],
                   latency: Optional[Dict] = None) -> str:
    """Sets metadata.json's default_onnx: int8 only if its cosine EER is within
    INT8_MAX_EER_LOSS points of fp32's and, with ``latency`` (benchmark_export's JSON), it is
    also faster; returns a line saying what was decided and why."""
    export = ExpLayout(exp).export
    meta = read_metadata(export)
    if "onnx_int8" not in meta["files"] or not meta["scoring"]:
        return f"{exp.name}: no int8 model or no thresholds: default stays {meta['default_onnx']}"
    trials = meta["scoring"]["trials_name"]
    fp32, int8 = (_cosine_eer(rows, rt, trials) for rt in ("ONNX fp32", "ONNX int8"))
    if fp32 is None or int8 is None:
        return f"{exp.name}: no fp32/int8 cosine result on {trials}: default unchanged"
    speedup = int8_speedup(exp, latency)
    ok = abs(int8 - fp32) <= INT8_MAX_EER_LOSS and (speedup is None or speedup > 1.0)
    meta["default_onnx"] = meta["files"]["onnx_int8" if ok else "onnx"]
    meta["int8_decision"] = {"trials_name": trials, "cosine_eer_fp32": fp32,
                             "cosine_eer_int8": int8, "max_loss_points": INT8_MAX_EER_LOSS,
                             "int8_speedup_1_thread": speedup, "int8_is_default": ok}
    with atomic_write(export / METADATA_FILE, encoding="utf-8") as f:
        f.write(json.dumps(meta, indent=1) + "\n")
    speed = "" if speedup is None else f", int8 runs {speedup:.2f}x as fast as fp32 (1 thread)"
    return (f"{exp.name}: cosine EER on {trials}: fp32 {fp32:.3f}%, int8 {int8:.3f}% "
            f"({int8 - fp32:+.3f} points; limit {INT8_MAX_EER_LOSS}){speed} -> default "
            f"{meta['default_onnx']}")
