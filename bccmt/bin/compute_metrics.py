"""EER / minDCF of score files (the metrics of stage 5/6, usable on any ``enroll test score`` file).

  python -m bccmt.bin.compute_metrics [--trials T] [--result OUT] [--det-png P] scores [scores ...]

Labels come from --trials (joined on the enroll/test pair) or from a 4th score-file column
(target|nontarget). Prints one line per file: EER %, minDCF(0.01), minDCF(0.001), thresholds.
--result writes the result YAML (only with one score file); --det-png draws all files' DET curves.
Definitions: bccmt.metrics (interpolated EER; normalised minDCF with c_miss = c_fa = 1).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from bccmt.io.scores import format_metrics, read_scores, write_result
from bccmt.io.tables import TableError
from bccmt.logging_setup import setup_logging
from bccmt.metrics import compute_metrics, det_points, plot_det

logger = logging.getLogger("compute_metrics")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--trials", default=None, help="Kaldi trials (enroll test target|nontarget)")
    p.add_argument("--result", default=None, help="write a result YAML (one score file only)")
    p.add_argument("--det-png", default=None, help="write DET curves of all score files")
    p.add_argument("scores", nargs="+")
    a = p.parse_args(argv)
    setup_logging()
    if a.result and len(a.scores) != 1:
        p.error("--result needs exactly one score file")
    curves = {}
    try:
        for path in a.scores:
            scores, labels = read_scores(path, a.trials)
            m = compute_metrics(scores, labels)
            print(f"{path} EER {m['eer']:.3f}% (thr {m['eer_threshold']:.4g}) "
                  f"minDCF(0.01) {m['min_dcf_0.01']:.4f} (thr {m['min_dcf_0.01_threshold']:.4g}) "
                  f"minDCF(0.001) {m['min_dcf_0.001']:.4f} "
                  f"(thr {m['min_dcf_0.001_threshold']:.4g}) "
                  f"[{m['n_target']} target, {m['n_nontarget']} nontarget]")
            if a.result:
                write_result(a.result, {"scores": path, "trials": a.trials,
                                        **format_metrics(m)})
            if a.det_png:
                curves[Path(path).name] = det_points(scores, labels)
        if a.det_png:
            plot_det(curves, a.det_png, title="DET")
    except (TableError, ValueError) as e:
        logger.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
