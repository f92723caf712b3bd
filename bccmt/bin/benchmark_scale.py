"""The recipe at VoxCeleb size: stages 0-5 on the scale corpus, measured; writes docs/scale.md.

  cd egs/voxceleb
  python -m bccmt.bin.benchmark_scale                 # full: conf/scale_corpus.yaml -> ../../docs/scale.md
  python -m bccmt.bin.benchmark_scale --quick         # small corpus, a few steps (CI) -> <work>/scale.md
  python -m bccmt.bin.benchmark_scale --report-only   # tables again from <work>/results.json

The steps and what each measures are in bccmt.studies.scale; the projection to full VoxCeleb2 +
Vox1 in bccmt.studies.scale_report. A rerun resumes: steps already in <work>/results.json are
skipped. Run it on an idle machine: the figures are wall and CPU times. The report is rewritten
from results.json each time; text below its NOTES_MARKER line (notes by hand) is kept.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

import yaml

from bccmt.logging_setup import setup_logging
from bccmt.studies.scale import Benchmark, ScaleError, Settings
from bccmt.studies.scale_report import write_report

log = logging.getLogger("benchmark_scale")

# --quick: the scale config's shape at a size CI affords (O/E/H lists included).
QUICK_SIZES = {"train": {"speakers": 24, "videos": 2, "utts_per_video": 3},
               "test": {"speakers": 12, "videos": 2, "utts_per_video": 3},
               "num_trials": 60, "o_speakers": 6, "trials_e": 200, "trials_h": 120,
               "speakers": {"languages": ["en", "de"]},  # H: 4 language x gender groups
               "extras": {"noise_files": 4, "music_files": 3, "speech_speakers": 3,
                          "file_dur": [3.0, 4.0], "rooms_per_size": 1, "rirs_per_room": 2}}


def quick_corpus_conf(full: Path, out: Path) -> Path:
    """The full scale config with QUICK_SIZES merged in, written to out."""
    with open(full, encoding="utf-8") as f:
        cfg = yaml.safe_load(f) or {}
    for key, value in QUICK_SIZES.items():
        if isinstance(value, dict):
            cfg.setdefault(key, {}).update(value)
        else:
            cfg[key] = value
    text = yaml.safe_dump(cfg, sort_keys=False)
    if out.exists() and out.read_text(encoding="utf-8") != text:
        raise ScaleError(f"{out} holds another quick corpus config (from another --corpus-conf): "
                         f"use another --work or remove it")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out


NOTES_MARKER = "<!-- benchmark_scale keeps what follows this line when it rewrites the page -->"


def kept_notes(out: Path) -> str:
    """The hand-written part of an existing report (from NOTES_MARKER on), or ""."""
    try:
        old = out.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    at = old.find(NOTES_MARKER)
    return "\n" + old[at:] if at >= 0 else ""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small corpus and few steps (CI)")
    p.add_argument("--work", type=Path, help="work dir (default exp/scale, exp/scale_quick)")
    p.add_argument("--corpus-conf", type=Path, default=Path("conf/scale_corpus.yaml"))
    p.add_argument("--nj", type=int, default=2, help="parallel jobs of stages 0, 1 and 4")
    p.add_argument("--train-steps", type=int, help="training steps per model (default 100; quick 2)")
    p.add_argument("--out", type=Path,
                   help="markdown report (default ../../docs/scale.md; quick: <work>/scale.md)")
    p.add_argument("--report-only", action="store_true", help="only write the report")
    args = p.parse_args(argv)
    setup_logging()
    recipe = Path.cwd()
    if not (recipe / "local" / "make_fbank.sh").is_file():
        p.error("run it from the recipe folder (egs/voxceleb)")
    if args.nj < 1:
        p.error("--nj must be >= 1")
    work = (args.work or Path("exp/scale_quick" if args.quick else "exp/scale")).resolve()
    conf = args.corpus_conf.resolve()
    try:
        if args.quick:
            conf = quick_corpus_conf(conf, work / "corpus.yaml")
    except (ScaleError, OSError) as e:
        log.error("%s", e)
        return 1
    s = Settings(recipe=recipe, work=work, corpus_conf=conf, nj=args.nj, quick=args.quick)
    if args.quick:
        s.aug_subset, s.train_steps, s.train_batch, s.train_workers, s.loader_crops = 8, 2, 8, 1, 64
        s.backend_per_spk = 2
    if args.train_steps:
        s.train_steps = args.train_steps
    out = args.out or (work / "scale.md" if args.quick else recipe / ".." / ".." / "docs" /
                       "scale.md")
    command = ("python -m bccmt.bin.benchmark_scale " + shlex.join(
        argv if argv is not None else sys.argv[1:])).strip()
    try:
        bench = Benchmark(s)
        if not args.report_only:
            runs = bench.results.setdefault("commands", [])  # the report names the runs (a
            if command not in runs:  # resumed benchmark may have had several), not --report-only
                runs.append(command)
            bench.run()
    except ScaleError as e:
        log.error("%s", e)
        return 1
    text = write_report(bench.results, command)
    out.write_text(text + "\n" + kept_notes(out), encoding="utf-8")
    print(text)
    log.info("report: %s; results: %s", out.resolve(), bench.results_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
