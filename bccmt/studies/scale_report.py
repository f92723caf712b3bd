"""docs/scale.md from the scale benchmark's results.json (bccmt.studies.scale): tables per stage,
the loader, training, extraction, scoring, and a projection to full VoxCeleb2 + Vox1-O/E/H."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List

from bccmt.studies.scale import (EPOCHS, GPU_CROPS_PER_S, VOX1_HOURS, VOX2_DEV_HOURS,
                                 VOX2_DEV_UTTS)

GB = 1e9
AUG_UTTS = 1_000_000  # 4 types x 250,000 augmented utterances, as in the Kaldi/WeSpeaker recipes
GPU_TARGET = 1000.0  # crops/s a GPU needs from the loader (docs/gpu.md)


def _t(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{int(seconds // 60)} min {seconds % 60:.0f} s"
    return f"{seconds:.1f} s"


def _per_hour(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"


def _gb(n: float) -> str:
    return f"{n / GB:.2f} GB" if n < 100 * GB else f"{n / GB:.0f} GB"


def _table(header: List[str], rows: List[List[Any]]) -> List[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


STAGE_ROWS = [  # step, stage, what
    ("corpus", "0", "synthesis of the corpus (eSpeak NG, mini-corpus maker)"),
    ("prepare", "0", "data dirs + trial lists (prepare_voxceleb.sh)"),
    ("augment", "1", "augmented copies (4 types of a random subset)"),
    ("fbank", "1", "fbank, training set, float32"),
    ("fbank_cm", "1", "fbank, training set, compressed"),
    ("fbank_eval", "1", "fbank, evaluation set (extraction settings)"),
    ("fbank_backend", "1", "fbank, backend subset (extraction settings)"),
    ("extract_eval", "4", "embeddings, evaluation set (Tiny + KD)"),
    ("extract_backend", "4", "embeddings, backend subset + speaker means"),
]


def stage_table(steps: Dict[str, Any]) -> List[str]:
    rows = []
    for key, stage, what in STAGE_ROWS:
        r = steps.get(key)
        if not r:
            continue
        hours = r.get("hours") or 0.0
        per_h = _per_hour(r["cpu_s"] / hours) if hours else ""
        disk = r.get("disk")
        utts = r.get("utts")
        rows.append([stage, what, f"{utts:,}" if utts else "",
                     f"{hours:.2f}", _t(r["wall_s"]), f"{utts / r['wall_s']:.0f}" if utts else "",
                     _t(r["cpu_s"]), per_h,
                     f"{r['max_rss_mb']:.0f} MB", _gb(disk) if disk else "",
                     f"{disk / hours / 1e6:.0f} MB" if disk and hours else ""])
    return _table(["stage", "step", "utterances", "audio h", "wall", "utts/s", "CPU",
                   "CPU per audio h",
                   "peak RSS", "disk", "disk per audio h"], rows)


def loader_table(loader: Dict[str, Any]) -> List[str]:
    rows = [[r["data"], "compressed" if r["compressed"] else "float32", r["reads"], r["workers"],
             f"{r['crops_per_s']:.0f}"] for r in loader["rows"]]
    return _table(["features", "storage", "reads", "workers", "crops/s"], rows)


def train_table(steps: Dict[str, Any]) -> List[str]:
    rows = []
    for key, name in (("train_base", "BC-CMT-Base"), ("train_tiny_kd", "BC-CMT-Tiny + KD")):
        r = steps.get(key)
        if not r:
            continue
        rows.append([name, f"{r['num_classes']:,}", r["steps"], r["batch_size"], r["workers"],
                     f"{r['step_time_s']:.2f} s", f"{r['crops_per_s']:.1f}",
                     f"{r['max_rss_mb']:.0f} MB",
                     _loss_windows(r),
                     f"{r['lr_first']:g} -> {max(r.get('lrs') or [r['lr_first']]):g} -> "
                     f"{r['lr_last']:g}",
                     f"{r['margin_first']:g} -> {r['margin_last']:g}"])
    return _table(["model", "AAM classes", "steps", "batch", "loader workers", "step (median)",
                   "crops/s", "peak RSS", "loss: first tenth of the steps -> last tenth at margin 0 -> last tenth",
                   "lr (first -> peak -> last)", "margin"], rows)


def _loss_windows(r: Dict[str, Any]) -> str:
    """Mean loss of the first tenth of the steps -> the last tenth before the margin (margin-free,
    comparable with the first) -> the last tenth (full margin: higher by construction)."""
    losses = r.get("losses") or [r["loss_first"], r["loss_last"]]
    margins = r.get("margins") or [0.0] * len(losses)
    k = max(1, len(losses) // 10)
    free = [loss for loss, m in zip(losses, margins) if m == 0]
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    parts = [f"{mean(losses[:k]):.2f}"]
    if len(free) >= 2 * k:
        parts.append(f"{mean(free[-k:]):.2f}")
    return " -> ".join(parts + [f"{mean(losses[-k:]):.2f}"])


def score_table(steps: Dict[str, Any]) -> List[str]:
    rows = []
    for key in sorted(k for k in steps if k.startswith("score_")):
        r = steps[key]
        trials, backend = key[len("score_"):].rsplit("_", 1)
        rows.append([trials, f"{r['trials']:,}", backend, _t(r["wall_s"]), _t(r["cpu_s"]),
                     f"{r['max_rss_mb'] / 1024:.2f} GB"])
    return _table(["trial list", "trials", "backend", "wall (local/score.sh)", "CPU",
                   "peak RSS"], rows)


def projection(res: Dict[str, Any]) -> List[str]:
    """Full VoxCeleb2 dev + Vox1, from the measured rates (lines of markdown)."""
    steps = res["steps"]
    nj = int(res["settings"]["nj"])
    lines: List[str] = []
    fb, fbc, loader = steps.get("fbank"), steps.get("fbank_cm"), steps.get("loader")
    vox_h = VOX2_DEV_HOURS + VOX1_HOURS
    aug_h = AUG_UTTS * VOX2_DEV_HOURS / VOX2_DEV_UTTS
    rows = []
    if fb and fbc:
        bph = fb["disk"] / fb["hours"]
        bph_cm = fbc["disk"] / fbc["hours"]
        if loader and loader.get("vox_len_hours"):  # VoxCeleb lengths: per-utterance headers
            bph = loader["disk_vox_len"] / loader["vox_len_hours"]  # weigh as they will
            bph_cm = loader["disk_vox_len_cm"] / loader["vox_len_hours"]
        rows.append(["fbank, VoxCeleb2 dev (2,300 h)", _gb(bph * VOX2_DEV_HOURS),
                     _gb(bph_cm * VOX2_DEV_HOURS)])
        rows.append([f"fbank, {AUG_UTTS:,} augmented utterances ({aug_h:.0f} h)",
                     _gb(bph * aug_h), _gb(bph_cm * aug_h)])
        rows.append(["fbank, VoxCeleb1 (352 h)", _gb(bph * VOX1_HOURS), _gb(bph_cm * VOX1_HOURS)])
        lines += ["Disk (bytes per audio hour measured on VoxCeleb-length matrices):", ""]
        lines += _table(["what", "float32", "compressed (--compress true)"], rows) + [""]
    cpu_rows = []
    per_hour = {}
    for key, hours_full, what in (("fbank", VOX2_DEV_HOURS, "stage 1 fbank, VoxCeleb2 dev"),
                                  ("fbank", aug_h, f"stage 1 fbank, {AUG_UTTS:,} augmented"),
                                  ("augment", aug_h, f"stage 1 augmentation, {AUG_UTTS:,} copies"),
                                  ("fbank_eval", VOX1_HOURS, "stage 1 fbank, VoxCeleb1"),
                                  ("extract_eval", VOX1_HOURS, "stage 4 Tiny + KD, VoxCeleb1"),
                                  ("extract_backend", VOX2_DEV_HOURS / 4,
                                   "stage 4 Tiny + KD, backend quarter of VoxCeleb2")):
        r = steps.get(key)
        if not r or not r.get("hours"):
            continue
        cpu_h = r["cpu_s"] / r["hours"] * hours_full / 3600
        per_hour[key] = r["cpu_s"] / r["hours"]
        cpu_rows.append([what, f"{hours_full:,.0f}", f"{r['cpu_s'] / r['hours']:.0f} s",
                         f"{cpu_h:.1f}", _t(cpu_h * 3600 / 8), _t(cpu_h * 3600 / 32)])
    if cpu_rows:
        lines += [f"CPU time (measured CPU seconds per audio hour x hours; with `--nj N` on N free "
                  f"cores the wall time is about CPU / N: the measured jobs ran with --nj {nj}):",
                  ""]
        lines += _table(["step", "audio h", "CPU per audio h", "CPU h", "wall, --nj 8",
                         "wall, --nj 32"], cpu_rows) + [""]
    gpu_rows = []
    for model, rate in GPU_CROPS_PER_S.items():
        for label, crops in (("VoxCeleb2 dev", VOX2_DEV_UTTS),
                             (f"+ {AUG_UTTS:,} augmented", VOX2_DEV_UTTS + AUG_UTTS)):
            hours = EPOCHS * crops / rate / 3600
            gpu_rows.append([model, label, f"{crops:,}", f"{rate:.0f}", f"{hours:.0f}"])
    lines += [f"GPU hours for {EPOCHS} epochs (one 2 s crop per training utterance per epoch, "
              f"conf/voxceleb), at the rates measured on one H200 (docs/gpu.md):", ""]
    lines += _table(["model", "training set", "crops per epoch", "crops/s", "GPU h"], gpu_rows)
    if loader:
        one = [r for r in loader["rows"] if r["data"] == "VoxCeleb lengths" and r["reads"] == "crop"
               and r["workers"] == 0]
        if one:
            lines += ["", "Loader workers for one GPU (1,000 crops/s), from the 0-worker rate at "
                      "VoxCeleb lengths: " + ", ".join(
                          f"{'compressed' if r['compressed'] else 'float32'} "
                          f"{math.ceil(GPU_TARGET / r['crops_per_s'])} worker(s) "
                          f"({r['crops_per_s']:.0f} crops/s each)" for r in one) + "."]
    return lines


def _shown_path(settings: Dict[str, Any]) -> str:
    """The corpus config relative to the recipe folder (no paths of the machine in the report)."""
    conf, recipe = Path(settings["corpus_conf"]), Path(settings.get("recipe", "."))
    try:
        return str(conf.relative_to(recipe))
    except ValueError:
        return conf.name


def write_report(res: Dict[str, Any], command: str) -> str:
    m, steps = res["machine"], res["steps"]
    prep = steps.get("prepare", {})
    shown = " and ".join(f"`{c}`" for c in res.get("commands") or [command])
    lines = ["# The recipe at VoxCeleb size (scale benchmark)", "",
             f"Run: {shown} (in egs/voxceleb) at commit {res.get('commit', 'unknown')}, on {m['cpu']} "
             f"({m['cores']} cores), --nj {res['settings']['nj']}. Corpus: "
             f"`{_shown_path(res['settings'])}`: {prep.get('train_speakers', '?'):,} training "
             f"and {prep.get('eval_speakers', '?'):,} evaluation speakers, "
             f"{prep.get('utts', 0):,} utterances, {prep.get('hours', 0):.1f} h.", ""]
    loads = [r["load_at_start"] for r in steps.values() if "load_at_start" in r]
    if loads:
        lines += [f"1-minute load average when the steps started: at most {max(loads):.2f} on "
                  f"{m['cores']} cores. It still counts the previous step's own jobs (it is an "
                  "average over about a minute), so up to --nj is expected with nothing else "
                  "running.", ""]
    commits = sorted({str(r.get("commit")) for r in steps.values() if r.get("commit")})
    if len(commits) > 1:
        lines += [f"The steps ran at commits {', '.join(commits)} (a resumed run; each step's "
                  "commit is in results.json).", ""]
    if prep.get("trials"):
        lines += ["Trial lists: " + ", ".join(f"{k} {v:,}" for k, v in
                                               sorted(prep["trials"].items())) + ".", ""]
    lines += ["## Stages 0, 1 and 4", ""] + stage_table(steps) + [""]
    if "loader" in steps:
        lo = steps["loader"]
        lines += ["## Training loader", "",
                  f"Crops of 2 s per second, SpecAugment on, batch 32, from the page cache; mean "
                  f"utterance: scale corpus {lo['mean_frames_scale'] / 100:.1f} s (shorter than "
                  f"the crop: tiled), VoxCeleb lengths {lo['mean_frames_vox'] / 100:.1f} s. "
                  "`crop` reads only the crop's rows (the loader), `whole` reads the whole "
                  "matrix per crop (the loader before).", ""] + loader_table(lo) + [""]
    if "train_base" in steps or "train_tiny_kd" in steps:
        lines += ["## The VoxCeleb schedules (conf/voxceleb) on this CPU", ""] + train_table(
            steps) + [""]
    if any(k.startswith("score_") for k in steps):
        lines += ["## Scoring at O/E/H size (stage 5)", ""] + score_table(steps) + [""]
    lines += ["## Projection to full VoxCeleb2 dev + VoxCeleb1", ""] + projection(res) + [""]
    return "\n".join(lines)
