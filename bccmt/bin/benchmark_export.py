"""Stage 7: batch-1 CPU latency of exported models beside PyTorch and ECAPA-TDNN (same run).

  python -m bccmt.bin.benchmark_export --exps exp/bccmt_tiny_kd exp/bccmt_tiny exp/bccmt_base \
      --out exp/export_latency.md [--results RESULTS.md] [--quick]

For every exp: its PyTorch model (exp/<m>/models/final.pt), its ONNX fp32 and (if exported) int8
model from exp/<m>/export; plus the baseline ECAPA-TDNN C=512 in PyTorch (random weights: the
time does not depend on them). 1, 3 and 10 s inputs, 1 and 2 threads, batch 1, 5 warm-up runs,
median of 20, two sweeps (bccmt.export.latency). Prints and writes a markdown table (and the
figures as JSON beside it: <out stem>.json), the machine
and its load, and whether exported BC-CMT-Tiny meets the target at 10 s on 1 thread (<= 0.25x
ECAPA-TDNN and <= 20 ms). Timings are only meaningful on an otherwise idle machine.
"""

import datetime
import json
import logging
import sys
from pathlib import Path

from bccmt.logging_setup import setup_logging

logger = logging.getLogger("benchmark_export")
BLOCK = "export-latency"
BASELINE = "ecapa_tdnn_c512 PyTorch"
TARGET_RATIO, TARGET_MS = 0.25, 20.0


def entries(exps):
    """name -> (threads -> runner) for every exp's PyTorch, ONNX fp32 and int8 model."""
    from bccmt.export.latency import onnx_runner, torch_runner
    from bccmt.models import build_model
    from bccmt.runtime.model import read_metadata
    from bccmt.exp import ExpLayout, load_embedding_model

    out = {}
    for exp in exps:
        model = load_embedding_model(exp)[0]
        export = ExpLayout(exp).export
        meta = read_metadata(export)
        out[f"{exp.name} PyTorch"] = lambda t, m=model: torch_runner(m, t)
        for key, label in (("onnx", "ONNX fp32"), ("onnx_int8", "ONNX int8")):
            if key in meta["files"]:
                path = export / meta["files"][key]
                out[f"{exp.name} {label}"] = lambda t, p=path: onnx_runner(p, t)
    ecapa = build_model("ecapa_tdnn_c512").eval()
    out[BASELINE] = lambda t: torch_runner(ecapa, t)
    return out


def target_lines(ms, exps) -> list:
    from bccmt.exp import ExpLayout
    from bccmt.runtime.model import read_metadata

    lines = []
    base = ms[BASELINE]["1"]["10"]
    for exp in exps:
        if read_metadata(ExpLayout(exp).export)["model_name"] != "bccmt_tiny":
            continue
        for label in ("ONNX fp32", "ONNX int8"):
            v = ms.get(f"{exp.name} {label}", {}).get("1", {}).get("10")
            if v is not None:
                ok = v <= TARGET_RATIO * base and v <= TARGET_MS
                lines.append(f"- {exp.name} {label}, 10 s, 1 thread: {v:.1f} ms = "
                             f"{v / base:.2f}x ECAPA-TDNN -> target (<= {TARGET_RATIO}x and <= "
                             f"{TARGET_MS:g} ms) {'met' if ok else 'NOT met'}")
    return lines


def main(argv=None) -> int:
    from bccmt.export.latency import LatencyConfig, machine, measure, table
    from bccmt.io.markdown import publish, table_tool_parser
    from bccmt.io.tables import atomic_write
    from bccmt.provenance import git_commit

    p = table_tool_parser(__doc__)
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 1 and 10 s, 1 thread, 1 sweep, median of 3 after 1 warm-up")
    a = p.parse_args(argv)
    setup_logging()
    exps = [Path(e) for e in a.exps]
    cfg = (LatencyConfig(seconds=(1.0, 10.0), threads=(1,), sweeps=1, runs=3, warmup=1)
           if a.quick else LatencyConfig())
    load_before = machine()
    ms = measure(entries(exps), cfg)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = (f"### Exported models: CPU latency, batch 1 (`python -m bccmt.bin.benchmark_export`)"
            f"\n\n{table(ms, BASELINE, cfg)}\n\nMedian of {cfg.runs} runs after {cfg.warmup} "
            f"warm-up runs, mean of {cfg.sweeps} sweep(s); commit {git_commit()}, {date}. "
            f"Machine: {load_before} at the start, load {machine().rsplit(' ', 1)[-1]} at the "
            "end. The ONNX graphs hold everything after the fbank (bccmt.inputs.EmbeddingGraph).\n\n"
            + "\n".join(target_lines(ms, exps)) + "\n")
    publish(text, a.out, a.results, BLOCK)
    with atomic_write(Path(a.out).with_suffix(".json"), encoding="utf-8") as f:
        json.dump(ms, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
