"""Stage 6 entry point: the results table and the DET figure (see bccmt.report).

  python -m bccmt.bin.report --exps exp/bccmt_base exp/bccmt_tiny_kd --out RESULTS.md
      [--trials-names "vox1_O_cleaned"] [--backends "cosine asnorm plda"] [--det-png det.png]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from bccmt.logging_setup import setup_logging
from bccmt.report import collect, write_report

logger = logging.getLogger("report")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--exps", required=True, nargs="+", help="exp dirs")
    p.add_argument("--out", required=True, help="markdown file to write (e.g. RESULTS.md)")
    p.add_argument("--trials-names", default="", help="only these trial lists (default: all)")
    p.add_argument("--backends", default="", help="only these backends (default: all)")
    p.add_argument("--det-png", default=None, help="DET figure (default <out stem>_det.png)")
    p.add_argument("--no-flops", action="store_true", help="skip the FLOP count")
    a = p.parse_args(argv)
    setup_logging()
    exps = [Path(e) for e in a.exps]
    missing = [str(e) for e in exps if not e.is_dir()]
    if missing:
        logger.error("no such exp dir(s): %s", ", ".join(missing))
        return 1
    rows = collect(exps, set(a.trials_names.split()), set(a.backends.split()), not a.no_flops)
    if not rows:
        logger.error("no results found under %s", ", ".join(f"{e}/scores" for e in exps))
        return 1
    print(write_report(Path(a.out), rows, a.det_png))
    return 0


if __name__ == "__main__":
    sys.exit(main())
