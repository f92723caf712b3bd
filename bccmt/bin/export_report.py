"""Stage 7: the exported models' accuracy beside PyTorch, and the int8-as-default decision.

  python -m bccmt.bin.export_report --exps "exp/bccmt_base exp/bccmt_tiny_kd" \
      --out exp/export_accuracy.md [--results RESULTS.md]

Reads exp/<m>/scores/*.result (stage 5, PyTorch) and exp/<m>/export_eval/{fp32,int8}/scores/
*.result (the same lists scored from ``bccmt embed`` embeddings) and writes one markdown table.
For each export with an int8 model, metadata.json's default_onnx becomes the int8 file only if
its cosine EER is within 0.2 points of fp32's (bccmt.export.compare). With --results, the table
also goes into that RESULTS.md as the block "export-accuracy".
"""

import argparse
import logging
import sys
from pathlib import Path

from bccmt.logging_setup import setup_logging

logger = logging.getLogger("export_report")
BLOCK = "export-accuracy"


def main(argv=None) -> int:
    from bccmt.export.compare import INT8_MAX_EER_LOSS, choose_default, collect, table
    from bccmt.export.latency import write
    from bccmt.io.markdown import write_block
    from bccmt.runtime.model import ModelDirError

    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exps", required=True, help="space-separated exp dirs (each with export/)")
    p.add_argument("--out", required=True, help="markdown file for the table")
    p.add_argument("--results", default=None, help="RESULTS.md to put the table into")
    a = p.parse_args(argv)
    setup_logging()
    exps = [Path(e) for e in a.exps.split()]
    rows, decisions = [], []
    try:
        for exp in exps:
            rows += collect(exp)
            decisions.append(choose_default(exp, rows))
    except ModelDirError as e:
        logger.error("%s", e)
        return 1
    if not rows:
        logger.error("no results under %s", ", ".join(str(e) for e in exps))
        return 1
    text = ("### Exported models: accuracy (`bccmt embed` from audio, then local/score.sh)\n\n"
            + table(rows) + "\n\nint8 becomes an export's default ONNX model only if its cosine "
            f"EER is within {INT8_MAX_EER_LOSS} points of fp32's:\n\n"
            + "\n".join(f"- {d}" for d in decisions) + "\n")
    write(Path(a.out), text)
    print(text)
    if a.results:
        write_block(a.results, BLOCK, text)
        logger.info("updated block %s of %s", BLOCK, a.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
