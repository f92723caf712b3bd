"""Checks eSpeak NG voice variants for run-to-run determinism.

Each variant synthesizes the same sentence in two fresh processes (the first synthesis after engine
start, so the engine's internal state is identical); a variant is deterministic when both runs give
identical int16 samples. ``python -m bccmt.corpus.variant_check [variant ...]`` prints a table.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import sys
from typing import Dict, List, Optional

CHECK_TEXT = "The quick brown fox jumps over the lazy dog, and then it runs away."


def _digest(variant: str) -> str:
    from bccmt.corpus.espeak import EspeakEngine

    engine = EspeakEngine()
    engine.set_voice("en", variant, 50, 50, 175)
    return hashlib.sha1(engine.synth(CHECK_TEXT).tobytes()).hexdigest()


def check_variants(variants: List[str], nproc: int = 2) -> Dict[str, bool]:
    """-> {variant: deterministic}; every synthesis runs in its own fresh (forked) process."""
    ctx = mp.get_context("fork")
    with ctx.Pool(nproc, maxtasksperchild=1) as pool:
        first = pool.map(_digest, variants, chunksize=1)
        second = pool.map(_digest, variants, chunksize=1)
    return {v: a == b for v, a, b in zip(variants, first, second)}


def main(argv: Optional[List[str]] = None) -> int:
    from bccmt.corpus.espeak import available_variants

    variants = list(argv if argv is not None else sys.argv[1:]) or available_variants()
    result = check_variants(variants)
    for v in variants:
        sys.stdout.write(f"{v}\t{'deterministic' if result[v] else 'NON-DETERMINISTIC'}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
