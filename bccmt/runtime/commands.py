"""What the ``bccmt`` command does: embed files or a wav.scp, verify, score a trial list.

Inputs are named in every error. Outputs are written atomically: an ``.npy`` of (N, D) float32
rows in argument order, or Kaldi ``xvector.{ark,scp}`` (bccmt.io.vectors, the recipe's format),
and score files in the recipe's ``enroll test score`` format (bccmt.io.scores).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from bccmt.io.tables import TableError, atomic_write, c_order, read_kv, read_trials
from bccmt.runtime.model import Decision, ExportedModel, ModelDirError, cosine_trial_scores

logger = logging.getLogger(__name__)


def _progress(items, desc: str):
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="utt", disable=None, leave=False)


def embed_items(model: ExportedModel, items: Sequence[Tuple[str, str]]
                ) -> Iterator[Tuple[str, np.ndarray]]:
    """(key, wav.scp value or path) -> (key, (D,) embedding), in order; logs the rate at the end."""
    start = time.perf_counter()
    for key, spec in _progress(items, "embedding"):
        yield key, model.embed_audio(spec, name=key if key == spec else f"{key} ({spec})")
    if items:
        logger.info("embedded %d inputs in %.1f s with %s", len(items),
                    time.perf_counter() - start, model.onnx_file)


def write_npy(path, rows: Iterable[Tuple[str, np.ndarray]]) -> int:
    """Stacks the embeddings into one (N, D) float32 .npy, rows in input order."""
    emb = np.stack([v for _, v in rows]).astype(np.float32)
    with atomic_write(path, "wb") as f:
        np.save(f, emb)
    logger.info("wrote %s: %d x %d float32, rows in argument order", path, *emb.shape)
    return emb.shape[0]


def write_ark_scp(out_dir, rows: Iterable[Tuple[str, np.ndarray]]) -> int:
    """out_dir/xvector.{ark,scp} (the recipe's embedding format)."""
    from bccmt.io.vectors import write_vectors

    out_dir = Path(out_dir)
    n = write_vectors(out_dir / "xvector.ark", out_dir / "xvector.scp", rows)
    logger.info("wrote %d embeddings to %s", n, out_dir / "xvector.scp")
    return n


def file_items(paths: Sequence[str]) -> List[Tuple[str, str]]:
    """Command-line files as (key, path); the key is the path as given (an ark/scp key)."""
    bad = [p for p in paths if not p.strip() or any(c.isspace() for c in p)]
    if bad:
        raise ModelDirError(f"file names with whitespace cannot be embedding keys: {bad[:3]}")
    if len(set(paths)) != len(paths):
        raise ModelDirError("the same file is given twice")
    return [(p, p) for p in paths]


def wav_scp_items(wav_scp, keys: Optional[Iterable[str]] = None) -> List[Tuple[str, str]]:
    """(utt, value) of a wav.scp (all, or ``keys`` in sorted order; a missing key is an error)."""
    try:
        table = read_kv(wav_scp)
    except TableError as e:
        raise ModelDirError(str(e)) from None
    if keys is None:
        return list(table.items())
    want = sorted(set(keys), key=c_order)
    missing = [k for k in want if k not in table]
    if missing:
        raise ModelDirError(f"{wav_scp}: no entry for {len(missing)} trial utterances, e.g. "
                            f"{', '.join(missing[:5])}")
    return [(k, table[k]) for k in want]


def verify(model: ExportedModel, enroll: Sequence[str], test: str, kind: str = "eer",
           threshold: Optional[float] = None) -> Decision:
    """Embeds the enrollment files and the test file and decides (see ExportedModel.verify)."""
    enroll_emb = [model.embed_audio(p) for p in enroll]
    return model.verify(enroll_emb, model.embed_audio(test), kind, threshold)


def describe(model: ExportedModel, d: Decision) -> str:
    """One line: decision, score, threshold and where the threshold came from."""
    origin = "given on the command line"
    if d.kind != "given":
        s = model.scoring_info()
        arch = model.meta["model_name"]
        who = model.name if model.name == arch else f"{model.name} ({arch})"
        origin = (f"{d.kind} threshold of {who} on {s['trials_name']} "
                  f"(EER {s['eer_percent']:.2f}%, minDCF(0.01) {s['min_dcf_p0.01']:.4f})")
    return (f"{'accept' if d.accept else 'reject'}  score {d.score:.6f}  threshold "
            f"{d.threshold:.6f}  [{origin}; accept when score > threshold]")


def score_trials(model: ExportedModel, trials_path, wav_scp, out) -> Dict[str, float]:
    """Scores a trial list from audio (cosine, training mean, as the recipe); writes ``out`` and
    returns the metrics when every trial has a label (otherwise {})."""
    from bccmt.io.scores import write_scores

    trials = read_trials(trials_path, labels=False)
    items = wav_scp_items(wav_scp, (u for e, t, _ in trials for u in (e, t)))
    keys, rows = zip(*embed_items(model, items))
    scores = cosine_trial_scores(model, list(keys), np.stack(rows), trials)
    write_scores(out, [(e, t, bool(lab)) for e, t, lab in trials], scores)
    logger.info("wrote %d scores to %s", len(scores), out)
    labels = [lab for _, _, lab in trials]
    if any(lab is None for lab in labels) or len(set(labels)) < 2:
        return {}
    from bccmt.metrics import compute_metrics

    return compute_metrics(scores, np.array(labels, dtype=bool))
