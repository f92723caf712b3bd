"""Stage 5 entry point: score trial lists with cosine / AS-norm / PLDA (see bccmt.scoring).

  python -m bccmt.bin.score_trials --exp-dir exp/bccmt_tiny [--train-set vox2_dev]
      [--eval-set vox1] [--backends "cosine asnorm plda"] data/vox1/trials/vox1_O_cleaned.kaldi ...
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from bccmt.backend.asnorm import DEFAULT_TOP_N
from bccmt.backend.plda import DEFAULT_EM_ITERS
from bccmt.io.tables import TableError
from bccmt.logging_setup import setup_logging
from bccmt.scoring import BACKENDS, ScoringError, score_all

logger = logging.getLogger("score_trials")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--exp-dir", required=True, type=Path)
    p.add_argument("--train-set", default="vox2_dev",
                   help="embeddings/<set> giving the mean, AS-norm cohort and PLDA data")
    p.add_argument("--eval-set", default=None,
                   help="embeddings/<set> of the trial utterances (default: from the trials path)")
    p.add_argument("--backends", default="cosine asnorm plda",
                   help=f"space/comma separated, from: {' '.join(BACKENDS)}")
    p.add_argument("--out-dir", type=Path, default=None, help="default <exp-dir>/scores")
    p.add_argument("--top-n", type=int, default=DEFAULT_TOP_N, help="AS-norm top-N cohort scores")
    p.add_argument("--lda-dim", default="auto",
                   help="PLDA's LDA: auto = min(D, 100, #spk-1), none = no LDA, or a number")
    p.add_argument("--plda-iters", type=int, default=DEFAULT_EM_ITERS, help="PLDA EM iterations")
    p.add_argument("trials", nargs="+", type=Path, help="Kaldi trial lists")
    a = p.parse_args(argv)
    setup_logging()
    lda = {"auto": 0, "none": None}.get(a.lda_dim.lower(), None)
    if a.lda_dim.lower() not in ("auto", "none"):
        if not a.lda_dim.isdigit() or int(a.lda_dim) < 1:
            p.error(f"--lda-dim must be auto, none or a positive integer, got {a.lda_dim}")
        lda = int(a.lda_dim)
    backends = a.backends.replace(",", " ").split()
    try:
        score_all(a.exp_dir, a.trials, backends, a.train_set, a.eval_set, a.out_dir, a.top_n,
                  lda, a.plda_iters)
    except (ScoringError, TableError) as e:
        logger.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
