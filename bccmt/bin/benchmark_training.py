"""Benchmark training throughput (crops/s) of Base, Tiny and Tiny+KD at 1 and 2 threads and as two
concurrent 1-thread processes, optionally against an older checkout in the same run.

    python -m bccmt.bin.benchmark_training [--baseline-root ../old-checkout] \\
        [--modes 1t 2t 2x1t] [--models base tiny tiny_kd] [--epochs 3] [--crops 96] [--repeats 1] \\
        [--crop-seconds 2 1] [--work-dir exp/benchmark_training]

Prints a markdown table (and writes <work-dir>/training_benchmark.md). Run it on an idle machine:
other jobs change these figures by up to 3x. See bccmt.studies.training_benchmark for the protocol.
"""

import argparse
from pathlib import Path

from bccmt.logging_setup import setup_logging
from bccmt.studies.training_benchmark import (CONFIGS, MODES, Root, cpu_model, root_env, run, table,
                                   with_crop_lengths)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--baseline-root", type=Path, help="older checkout to compare against")
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    p.add_argument("--models", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--epochs", type=int, default=3, help="epochs per point (the first is warm-up)")
    p.add_argument("--crops", type=int, default=96, help="crops per epoch")
    p.add_argument("--repeats", type=int, default=1, help="whole sweeps; medians are reported")
    p.add_argument("--crop-seconds", nargs="+", type=float,
                   help="measure every root at each of these crop lengths (default: the configs')")
    p.add_argument("--work-dir", type=Path, default=Path("exp/benchmark_training"))
    args = p.parse_args(argv)
    if args.epochs < 2:
        p.error("--epochs must be at least 2 (epoch 1 is a warm-up)")
    setup_logging()
    here = Path(__file__).resolve().parents[2]
    roots = [Root("current", here, root_env(here, baseline=False))]
    if args.baseline_root:
        base = args.baseline_root.resolve()
        if not (base / "bccmt" / "bin" / "train.py").exists():
            p.error(f"--baseline-root {base}: no bccmt/bin/train.py there")
        roots.insert(0, Root("baseline", base, root_env(base, baseline=True)))
    if args.crop_seconds:
        if min(args.crop_seconds) <= 0:
            p.error("--crop-seconds must be positive")
        roots = with_crop_lengths(roots, args.crop_seconds)
    results = run(roots, args.modes, args.models, args.work_dir, args.epochs, args.crops,
                  args.repeats)
    crops_of = (f"crops of {' / '.join(f'{c:g}' for c in args.crop_seconds)} s" if args.crop_seconds
                else "crops of 2 s")
    text = (f"Training throughput, {crops_of} per second ({cpu_model()}, "
            f"{args.epochs} epochs x {args.crops} crops, median of epochs 2..; "
            f"{args.repeats} repeat(s))\n\n" + table(results, args.models, args.modes))
    print(text)
    (args.work_dir / "training_benchmark.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
