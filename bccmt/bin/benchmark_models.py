"""Benchmark the embedding models: parameters, FLOPs (1 s) and batch-1 CPU (and GPU) latency.

    python -m bccmt.bin.benchmark_models [--models bccmt_tiny ecapa_tdnn_c512 ...]
        [--out-dir exp/benchmark] [--quick]

Writes <out-dir>/benchmark.md (table) and <out-dir>/benchmark.json. A model may carry overrides:
``bccmt_tiny:time_strides=[1,1,1,1]``. --quick: 1 and 10 s inputs, median of 3 runs after 1 warm-up
run (for a shared machine); the full run is 1..10 s, median of 20 after 5 warm-up, two sweeps.
Latency ratios are only meaningful between models of the same run (same load).
"""

import argparse
import logging

from bccmt.logging_setup import setup_logging
from bccmt.studies.model_benchmark import BenchmarkConfig, quick_config, run_benchmark, write_reports


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=None,
                        help="model specs (default: all registered models)")
    parser.add_argument("--out-dir", default="exp/benchmark", help="output folder")
    parser.add_argument("--quick", action="store_true", help="short sweep for a shared machine")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="CPU thread counts")
    parser.add_argument("--baseline", default="ecapa_tdnn_c512",
                        help="spec the latency ratios refer to")
    args = parser.parse_args(argv)
    setup_logging()
    cfg = quick_config(args.models) if args.quick else BenchmarkConfig()
    if args.models and not args.quick:
        cfg.models = tuple(args.models)
    cfg.threads = tuple(args.threads)
    cfg.baseline = args.baseline
    report = run_benchmark(cfg)
    for path in write_reports(report, args.out_dir):
        logging.info("wrote %s", path)


if __name__ == "__main__":
    main()
