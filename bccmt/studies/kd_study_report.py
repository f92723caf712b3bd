"""RESULTS.md of a KD study, rendered from the collected results (bccmt.studies.kd_study_results).

Sections: settings and wall time; the main comparison (arm ``kd`` vs ``plain``: summary and per
seed); the ablations (every other arm vs ``plain``, the same summary format); the diagnostics
(teacher map entropy, the KD terms' share of the loss and the student-teacher map KL by epoch).
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional

from bccmt.studies.kd_study import MAIN_ARM, METRICS, PLAIN

METRIC_NAMES = {"eer": "EER (%)", "min_dcf_0.01": "minDCF(0.01)", "min_dcf_0.001": "minDCF(0.001)"}
MAX_EPOCH_COLUMNS = 10


def _num(x: Optional[float], metric: str = "eer") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.2f}" if metric == "eer" else f"{x:.4f}"


def _ci(ci: List[Optional[float]], metric: str) -> str:
    return f"[{_num(ci[0], metric)}, {_num(ci[1], metric)}]"


def summary_table(rows: List[Dict[str, Any]], arms: Dict[str, List[str]], paper: float) -> str:
    """One line per arm x trial list x backend x metric: means, paired difference and its CIs."""
    lines = ["| arm | overrides | trial list | backend | metric | n | plain mean ± std "
             "| arm mean ± std | Δ (arm − plain) | 95% CI (paired t) | 95% CI (bootstrap) "
             "| relative Δ (95% CI, t) | paper |", "|" + "---|" * 13]
    for r in rows:
        m = r["metric"]
        rel = (f"{_num(r['relative_percent'])}% {_ci(r['relative_t_ci'], 'eer')}"
               if m == "eer" else "")
        lines.append(
            f"| {r['arm']} | {' '.join(arms.get(r['arm'], [])) or '(none)'} | {r['trials']} "
            f"| {r['backend']} | {METRIC_NAMES[m]} | {r['n']} "
            f"| {_num(r['plain_mean'], m)} ± {_num(r['plain_std'], m)} "
            f"| {_num(r['arm_mean'], m)} ± {_num(r['arm_std'], m)} | {_num(r['diff_mean'], m)} "
            f"| {_ci(r['t_ci'], m)} | {_ci(r['bootstrap_ci'], m)} | {rel} "
            f"| {f'{paper:+.1f}%' if m == 'eer' else ''} |")
    return "\n".join(lines)


def per_seed_table(runs: Dict[str, Dict], arm: str) -> str:
    """Per trial list, backend and seed: plain, arm and their difference for every metric."""
    head = "| trial list | backend | seed |" + "".join(
        f" plain {METRIC_NAMES[m]} | {arm} {METRIC_NAMES[m]} | Δ |" for m in METRICS)
    lines = [head, "|" + "---|" * (3 + 3 * len(METRICS))]
    for seed in sorted(set(runs[PLAIN]) & set(runs[arm])):
        p, a = runs[PLAIN][seed]["metrics"], runs[arm][seed]["metrics"]
        for tname in a:
            for backend in a[tname]:
                cells = []
                for m in METRICS:
                    pv, av = p[tname][backend][m], a[tname][backend][m]
                    cells += [_num(pv, m), _num(av, m), _num(av - pv, m)]
                lines.append(f"| {tname} | {backend} | {seed} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _epoch_columns(n: int) -> List[int]:
    if n <= MAX_EPOCH_COLUMNS:
        return list(range(n))
    step = (n - 1) / (MAX_EPOCH_COLUMNS - 1)
    return sorted({round(i * step) for i in range(MAX_EPOCH_COLUMNS)})


def epoch_table(diag: Dict[str, Dict[str, List]], key: str, fmt: str) -> str:
    """Arms x epochs table of one history key (mean over seeds)."""
    n = max((len(d.get("epoch", [])) for d in diag.values()), default=0)
    cols = _epoch_columns(n)
    lines = ["| arm |" + "".join(f" epoch {c + 1} |" for c in cols), "|" + "---|" * (len(cols) + 1)]
    for arm, d in diag.items():
        vals = d.get(key)
        if vals is None:
            continue
        cells = [format(vals[c], fmt) if c < len(vals) and vals[c] is not None else "n/a"
                 for c in cols]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def entropy_table(tables: Dict[str, Dict]) -> str:
    lines = ["| teacher checkpoint | map | heads | Tq x Tk | H / log(Tk) | distilled by |",
             "|---|---|---|---|---|---|"]
    for name, t in tables.items():
        for m in t["maps"]:
            lines.append(f"| {name} | {m['map']} | {m['heads']} | {m['tq']} x {m['tk']} "
                         f"| {_num(m['entropy_rel'], 'dcf')} | {', '.join(m['distilled_by'])} |")
    return "\n".join(lines)


def _header(res: Dict[str, Any], commit: str, date: str) -> List[str]:
    s = res["study"]
    seeds = sorted({seed for rs in res["runs"].values() for seed in rs})
    walls = res["mean_run_seconds"]
    pair = (walls.get(PLAIN, 0.0) + walls[MAIN_ARM]) if MAIN_ARM in walls else None
    common = " ".join(s["train_opts"]) or "(no overrides)"
    trials = ", ".join(f"`{t}`" for t in s["trials"])
    return [
        f"Teacher `{s['teacher_exp']}`; KD arms train `{s['kd_config']}` plus their overrides, "
        f"`{PLAIN}` trains `{s['plain_config']}`; both with `{common}` and `train.seed=<seed>`. "
        f"Data `{s['train_data']}`, backend set `{s['backend_data']}`, trial lists {trials}; "
        f"backends {', '.join(s['backends'])}.",
        f"Seeds run: {', '.join(map(str, seeds))}. Commit {commit}, generated {date}.",
        "Mean wall time per run (training, embeddings, scoring): "
        + ", ".join(f"{a} {v:.0f} s" for a, v in walls.items())
        + (f"; one {MAIN_ARM} + {PLAIN} pair {pair:.0f} s." if pair is not None else "."),
        "Δ < 0: the KD arm has the lower (better) EER/minDCF. Intervals: 95% paired t, and a "
        "seeded percentile bootstrap over seeds (bccmt.studies.kd_study_stats); relative Δ = Δ / plain "
        "mean. Every number is recomputed from the runs' score files (`runs/<arm>/seed<N>/scores`).",
    ]


def render(res: Dict[str, Any], commit: str, date: str) -> str:
    arms, paper = res["study"]["arms"], res["paper_relative_eer_change_percent"]
    main = [r for r in res["comparisons"] if r["arm"] == MAIN_ARM]
    ablations = [r for r in res["comparisons"] if r["arm"] != MAIN_ARM]
    out = ["<!-- generated by `python -m bccmt.bin.kd_study report`; rerun it to update -->",
           "# Does attention-map KD help? Paired-seed study", "", *_header(res, commit, date), ""]
    if main:
        out += [f"## Main comparison: {MAIN_ARM} vs {PLAIN}", "", summary_table(main, arms, paper),
                "", "Per seed:", "", per_seed_table(res["runs"], MAIN_ARM), ""]
    if ablations:
        out += [f"## Ablations (each arm vs {PLAIN}, paired by seed)", "",
                summary_table(ablations, arms, paper), ""]
    diag = res["diagnostics"]
    out += ["## Diagnostics", "",
            "Teacher map entropy on the monitor's fixed training crops (mean H(row) / log(Tk); "
            "1 = uniform rows, nothing to distil):", "", entropy_table(res["teacher_entropy"]), "",
            "KD terms' share of the training loss, (λ·attn + μ·emb) / L averaged over the steps "
            "of each epoch (mean over seeds):", "", epoch_table(diag, "kd_share", ".3f"), "",
            "Student-teacher map KL(teacher ‖ student) after each epoch, eval mode, on the last "
            "block of each stage (`map_kl_default`; mean over seeds; the plain students never "
            "see it in their loss; an arm with kd.teacher_checkpoint is measured against that "
            "teacher, every other arm against final.pt):", "",
            epoch_table(diag, "map_kl_default", ".4f"), ""]
    return "\n".join(out)
