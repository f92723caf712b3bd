"""Stage 7: the exported models' accuracy beside PyTorch, and the int8-as-default decision.

  python -m bccmt.bin.export_report --exps exp/bccmt_base exp/bccmt_tiny_kd \
      --out exp/export_accuracy.md [--latency exp/export_latency.json] [--results RESULTS.md]

Reads exp/<m>/scores/*.result (stage 5, PyTorch), exp/<m>/export_eval/{fp32,int8}/scores/
*.result (the same lists scored from ``bccmt embed`` embeddings) and exp/<m>/export_eval/sherpa/
scores/*.result (from sherpa-onnx's extractor on model.onnx) and writes one markdown table.
For each export with an int8 model, metadata.json's default_onnx becomes the int8 file only if
its cosine EER is within 0.2 points of fp32's and (with --latency, stage 7's latency JSON) it runs
faster (bccmt.export.compare); the sherpa-onnx rows do not take part. With --results, the
table also goes into that RESULTS.md as the block "export-accuracy".
"""

import json
import logging
import sys
from pathlib import Path

from bccmt.logging_setup import setup_logging

logger = logging.getLogger("export_report")
BLOCK = "export-accuracy"


def main(argv=None) -> int:
    from bccmt.export.compare import (INT8_MAX_EER_LOSS, choose_default, collect,
                                      embedding_agreement, table)
    from bccmt.io.markdown import publish, table_tool_parser
    from bccmt.runtime.model import ModelDirError

    p = table_tool_parser(__doc__)
    p.add_argument("--latency", default=None,
                   help="benchmark_export's JSON: int8 must also be faster to be the default")
    a = p.parse_args(argv)
    setup_logging()
    exps = [Path(e) for e in a.exps]
    latency = json.loads(Path(a.latency).read_text()) if a.latency else None
    rows, decisions, agreement = [], [], []
    try:
        for exp in exps:
            mine = collect(exp)
            rows += mine
            decisions.append(choose_default(exp, mine, latency))
            agreement += embedding_agreement(exp)
    except ModelDirError as e:
        logger.error("%s", e)
        return 1
    if not rows:
        logger.error("no results under %s", ", ".join(str(e) for e in exps))
        return 1
    text = ("### Exported models: accuracy (`bccmt embed` or sherpa-onnx from audio, then "
            "local/score.sh)\n\n"
            + table(rows) + "\n\nint8 becomes an export's default ONNX model only if its cosine "
            f"EER is within {INT8_MAX_EER_LOSS} points of fp32's and it is faster:\n\n"
            + "\n".join(f"- {d}" for d in decisions) + "\n"
            + ("\nThe same utterances embedded from audio by an exported runtime and by stage 4 "
               "(per-utterance cosine):\n\n" + "\n".join(f"- {x}" for x in agreement) + "\n"
               if agreement else ""))
    publish(text, a.out, a.results, BLOCK)
    return 0


if __name__ == "__main__":
    sys.exit(main())
