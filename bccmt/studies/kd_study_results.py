"""Collecting a KD study's finished runs (bccmt.studies.kd_study) into the results of results.json.

- Metrics are recomputed from every run's score files and trial lists (bccmt.metrics) and checked
  against the run's .result files, so results.json always agrees with the score files it names.
- Comparisons: every KD arm against ``plain`` over their common seeds (bccmt.studies.kd_study_stats), per
  trial list, backend and metric.
- Diagnostics: each run's epoch history (the newest models/epoch_N.pt) - the KD terms' share of the
  loss (kd_share) and the student-teacher map KL (map_kl, map_kl_default) after every epoch - and
  the teacher's map entropy relative to log(Tk) for every teacher checkpoint an arm uses, on the
  monitor's fixed crops (cached in diagnostics/teacher_entropy.<checkpoint>.json).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from bccmt.exp import FINAL, ExpLayout
from bccmt.io import atomic_write
from bccmt.studies.kd_study import (METRICS, PLAIN, StudyError, arm_overrides, finished_runs, read_done,
                            read_study)
from bccmt.studies.kd_study_stats import PAPER_RELATIVE_EER_CHANGE, compare_paired

log = logging.getLogger(__name__)
DIAG_KEYS = ("kd_share", "map_kl", "map_kl_default", "attn", "aam", "acc")
CropsFn = Callable[[Dict[str, Any]], Any]  # study settings -> (N, T, F) fixed training crops
EER_TOLERANCE = 1e-4  # .result files round the EER (%) to 4 decimals


def run_metrics(run: Path, trials: List[str], backends: List[str]) -> Dict[str, Dict[str, Any]]:
    """{trials name: {backend: {eer, min_dcf_0.01, min_dcf_0.001, score_file}}} of one run."""
    from bccmt.io.scores import read_result, read_scores
    from bccmt.metrics import compute_metrics

    layout = ExpLayout(run)
    out: Dict[str, Dict[str, Any]] = {}
    for t in trials:
        name = Path(t).stem  # local/score.sh names score files <trials basename minus ext>
        for b in backends:
            score = layout.score_file(name, b)
            if not score.is_file():
                raise StudyError(f"{score}: missing, though {run}/study.done exists (rerun the "
                                 f"study after deleting {run}/study.done)")
            m = compute_metrics(*read_scores(score, t))
            result = layout.result_file(name, b)
            stored = read_result(result)["eer_percent"] if result.is_file() else m["eer"]
            if abs(stored - m["eer"]) > EER_TOLERANCE:
                raise StudyError(f"{score}: EER {m['eer']:.4f}% disagrees with {result}; the score "
                                 "file changed after scoring")
            out.setdefault(name, {})[b] = {**{k: float(m[k]) for k in METRICS},
                                          "score_file": str(score)}
    return out


def run_history(run: Path) -> List[Dict[str, float]]:
    """The run's per-epoch training stats: its history.jsonl, else (runs trained before that
    file existed) the history in its newest epoch checkpoint ([] if neither)."""
    from bccmt.exp import epoch_checkpoints, load_state
    from bccmt.train.checkpoint import read_history

    rows = read_history(run)
    if rows:
        return rows
    models = ExpLayout(run).models
    found = epoch_checkpoints(models)
    if not found:
        log.warning("%s: no epoch checkpoint, so no training history", models)
        return []
    return list(load_state(found[-1][1]).get("history", []))


def compare_arms(study: Dict[str, Any], runs: Dict[str, Dict[int, Dict]]) -> List[Dict[str, Any]]:
    """Paired comparisons arm vs plain for every arm, trial list, backend and metric."""
    out = []
    for arm in study["arms"]:
        common = sorted(set(runs[arm]) & set(runs[PLAIN]))
        if not common:
            log.warning("arm %s: no seed finished in both it and %s", arm, PLAIN)
            continue
        first = runs[arm][common[0]]["metrics"]
        for tname in first:
            for backend in first[tname]:
                for metric in METRICS:
                    per = {a: {s: r["metrics"][tname][backend][metric] for s, r in runs[a].items()}
                           for a in (PLAIN, arm)}
                    out.append({"arm": arm, "trials": tname, "backend": backend, "metric": metric,
                                **compare_paired(per[PLAIN], per[arm])})
    return out


def aggregate_history(runs: Dict[int, Dict]) -> Dict[str, List[Optional[float]]]:
    """{key: [mean over seeds at epoch 1, 2, ...]} of DIAG_KEYS (None where no seed has it)."""
    n = max((len(r["history"]) for r in runs.values()), default=0)
    out: Dict[str, List[Optional[float]]] = {"epoch": list(range(1, n + 1))}
    for key in DIAG_KEYS:
        col = []
        for e in range(n):
            vals = [r["history"][e][key] for r in runs.values()
                    if e < len(r["history"]) and key in r["history"][e]]
            col.append(float(np.mean(vals)) if vals else None)
        if any(v is not None for v in col):
            out[key] = col
    return out


def _arm_kd(study: Dict[str, Any], arm: str):
    from bccmt.config import load_config

    cfg = study["plain_config" if arm == PLAIN else "kd_config"]
    return load_config(cfg, arm_overrides(study, arm)).kd


def teacher_entropy(study_dir: Path, study: Dict[str, Any], checkpoint: Optional[str],
                    load_crops: CropsFn) -> Dict:
    """{checkpoint, kd_layers, maps: [{map, heads, tq, tk, entropy_rel}]} of the teacher, cached.
    ``load_crops(study)``: the fixed training crops, (N, T, F); called only without a cache."""
    name = checkpoint or FINAL
    cache = study_dir / "diagnostics" / f"teacher_entropy.{name}.json"
    if cache.is_file():
        return json.loads(cache.read_text(encoding="utf-8"))
    from bccmt.exp import load_embedding_model
    from bccmt.kd.diagnostics import teacher_entropy as entropy

    teacher, _ = load_embedding_model(study["teacher_exp"], checkpoint=checkpoint)
    crops = load_crops(study)
    out = {"checkpoint": name, "num_crops": int(crops.shape[0]),
           "kd_layers": list(getattr(teacher, "kd_layers", [])),
           "maps": entropy(teacher, crops, "cpu")}
    with atomic_write(cache, encoding="utf-8") as f:
        json.dump(out, f, indent=1)
    return out


def entropy_tables(study_dir: Path, study: Dict[str, Any], load_crops: CropsFn) -> Dict[str, Dict]:
    """teacher_entropy for each teacher checkpoint in use, every map marked with the arms that
    distil it (``distilled_by``)."""
    tables: Dict[str, Dict] = {}
    for arm in [PLAIN, *study["arms"]]:
        kd = _arm_kd(study, arm)
        table = tables.get(kd.teacher_checkpoint or FINAL)
        if table is None:
            table = teacher_entropy(study_dir, study, kd.teacher_checkpoint, load_crops)
            tables[table["checkpoint"]] = table
            for m in table["maps"]:
                m["distilled_by"] = []
        if arm == PLAIN:
            continue
        paired = [t for _, t in kd.layers] if kd.layers is not None else table["kd_layers"]
        for m in table["maps"]:
            if m["map"] in paired:
                m["distilled_by"].append(arm)
    return tables


def collect(study_dir, load_crops: CropsFn) -> Dict[str, Any]:
    """Everything results.json holds (see the module doc); raises StudyError on missing pieces.
    ``load_crops``: see teacher_entropy."""
    study_dir = Path(study_dir)
    study = read_study(study_dir)
    runs: Dict[str, Dict[int, Dict]] = {}
    for arm, seeds in finished_runs(study_dir, study).items():
        runs[arm] = {seed: {"exp": str(run), "done": read_done(run),
                            "metrics": run_metrics(run, study["trials"], study["backends"]),
                            "history": run_history(run)} for seed, run in seeds.items()}
    if not runs[PLAIN]:
        raise StudyError(f"{study_dir}/runs/{PLAIN}: no finished run yet")
    walls = {arm: float(np.mean([r["done"]["seconds_total"] for r in rs.values()]))
             for arm, rs in runs.items() if rs}
    return {"study": study, "paper_relative_eer_change_percent": PAPER_RELATIVE_EER_CHANGE,
            "runs": runs, "comparisons": compare_arms(study, runs),
            "diagnostics": {arm: aggregate_history(rs) for arm, rs in runs.items() if rs},
            "teacher_entropy": entropy_tables(study_dir, study, load_crops), "mean_run_seconds": walls}


def json_safe(x):
    """NaN -> None (strict JSON), recursively."""
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, float) and math.isnan(x):
        return None
    return x


def training_crops(train_dir, config, overrides, num: int):
    """The fixed clean training crops of kd.diagnostics.fixed_crops (the ones the map monitor
    uses) for a data dir and a training config file with its --set overrides: (N, T, F)."""
    from pathlib import Path

    from bccmt.config import load_config
    from bccmt.features import load_fbank_config
    from bccmt.kd.diagnostics import fixed_crops
    from bccmt.train.data import CropDataset

    train_dir = Path(train_dir)
    fbank = load_fbank_config(train_dir / "fbank.yaml")
    data_cfg = load_config(config, overrides).data
    dataset = CropDataset(train_dir, data_cfg, fbank, 0)
    return fixed_crops(dataset, num)
