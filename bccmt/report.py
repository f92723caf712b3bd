"""Stage 6: the results table (RESULTS.md) and one DET figure for all models (entry point:
bccmt.bin.report).

One row per model x backend x trial list, from exp/<model>/scores/*.result: model, parameters and
FLOPs for 1 s of input (bccmt.models.profile), backend, trial list, EER %, minDCF(0.01),
minDCF(0.001), the training config name (config.yaml ``config_file``, which training records) and
seed (config.yaml), plus the git commit and the date for the whole table. The DET figure has one panel per backend and one curve per
model and trial list (default <out stem>_det.png).
"""

from __future__ import annotations

import datetime
import logging
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

from bccmt.exp import ExpLayout, load_embedding_model, read_resolved
from bccmt.io.markdown import blocks
from bccmt.io.scores import read_result, read_scores
from bccmt.io.tables import atomic_write
from bccmt.metrics import det_points, plot_det
from bccmt.provenance import git_commit

logger = logging.getLogger(__name__)
BACKEND_ORDER = {"cosine": 0, "asnorm": 1, "plda": 2}


def _find(d: Any, names) -> Optional[Any]:
    """First value of a key in ``names`` in a nested mapping (breadth first)."""
    queue = [d]
    while queue:
        cur = queue.pop(0)
        if isinstance(cur, dict):
            for n in names:
                if n in cur and not isinstance(cur[n], dict):
                    return cur[n]
            queue.extend(v for v in cur.values() if isinstance(v, dict))
    return None


def model_info(exp: Path, with_flops: bool = True) -> Dict[str, Any]:
    """name, params, flops, config, seed of one exp dir (missing pieces become 'n/a')."""
    from bccmt.config import ConfigError

    layout = ExpLayout(exp)
    cfg: Dict[str, Any] = {}
    if layout.config.is_file():
        try:
            cfg = read_resolved(layout.config).config
        except ConfigError as e:
            logger.warning("%s: no config name or seed (%s)", exp, e)
    info: Dict[str, Any] = {"exp": exp.name, "params": None, "flops": None,
                            "config": cfg.get("config_file"), "seed": _find(cfg, ("seed",))}
    if isinstance(info["config"], str):
        info["config"] = Path(info["config"]).name
    if not layout.final.is_file():
        logger.warning("%s: no models/final.pt, so no parameter/FLOP count", exp)
        return info
    try:
        from bccmt.models import profile

        model, _ = load_embedding_model(exp)
        info["params"] = profile.count_parameters(model)
        if with_flops:
            info["flops"] = profile.count_flops(model, seconds=1.0)
    except Exception as e:  # noqa: BLE001 - a report still lists the scores without the model
        logger.warning("%s: no parameter/FLOP count (%s)", exp, e)
    return info


def _human(n: Optional[float], unit: str) -> str:
    if n is None:
        return "n/a"
    for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.2f}{suf}{unit}"
    return f"{n:.0f}{unit}"


def collect(exps: List[Path], trials_names, backends, with_flops: bool):
    rows = []
    for exp in exps:
        results = ExpLayout(exp).results()
        if not results:
            logger.warning("%s: no scores/*.result (run stage 5)", exp)
        info = model_info(exp, with_flops)
        for path in results:
            r = read_result(path)
            if trials_names and r.get("trials_name") not in trials_names:
                continue
            if backends and r.get("backend") not in backends:
                continue
            rows.append({**info, **r, "result_file": str(path)})
    rows.sort(key=lambda r: (str(r.get("trials_name")), r["exp"],
                             BACKEND_ORDER.get(r.get("backend"), 9)))
    return rows


def table(rows, commit: str, date: str) -> str:
    head = ("| model | params | FLOPs (1 s) | backend | trial list | EER (%) | minDCF(0.01) "
            "| minDCF(0.001) | config | seed |")
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        lines.append(
            f"| {r['exp']} | {_human(r['params'], '')} | {_human(r['flops'], '')} "
            f"| {r.get('backend')} | {r.get('trials_name')} | {r['eer_percent']:.3f} "
            f"| {r['min_dcf_p0.01']:.4f} | {r['min_dcf_p0.001']:.4f} | {r['config'] or 'n/a'} "
            f"| {r['seed'] if r['seed'] is not None else 'n/a'} |")
    lines.append("")
    lines.append(f"commit {commit}, generated {date}. EER: interpolated crossing of the miss and "
                 "false-alarm curves; minDCF normalised, c_miss = c_fa = 1; thresholds and the "
                 "backend settings (cohort, top-N, LDA/PLDA) are in each "
                 "exp/<model>/scores/<trials>.<backend>.result.")
    return "\n".join(lines)


def det_figure(rows, png: str) -> None:
    panels: Dict[str, Dict[str, Any]] = {}
    for r in rows:
        try:
            scores, labels = read_scores(r["scores"], r["trials"])
        except (OSError, ValueError) as e:
            logger.warning("DET: skipping %s (%s)", r["result_file"], e)
            continue
        panels.setdefault(r["backend"], {})[f"{r['exp']} {r['trials_name']}"] = \
            det_points(scores, labels)
    if panels:
        plot_det(panels, png)
        logger.info("wrote %s", png)


def write_report(out: Path, rows, png: Optional[str] = None) -> str:
    """Writes RESULTS.md (the table, the DET figure link, and the sections other stages added,
    kept) and the DET figure (default <out stem>_det.png); returns the table."""
    commit = git_commit()
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    png = png or str(out.with_name(out.stem + "_det.png"))
    text = table(rows, commit, date)
    kept = blocks(out.read_text(encoding="utf-8")) if out.is_file() else {}
    with atomic_write(out, encoding="utf-8") as f:
        f.write("<!-- generated by `python -m bccmt.bin.report`; rerun stage 6 to update -->\n")
        f.write("# Results\n\n")
        f.write(text + "\n\n")
        f.write(f"![DET curves]({os.path.relpath(png, out.parent)})\n")
        for b in kept.values():  # sections other stages wrote (stage 7's export tables)
            f.write("\n" + b)
    det_figure(rows, png)
    return text
