"""Synthesizes the offline mini corpus (VoxCeleb/MUSAN/RIRS-like layout) with eSpeak NG.

Example: python -m bccmt.bin.make_mini_corpus --config conf/mini_corpus.yaml --out mini_corpus --nj 2
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Optional

from bccmt.corpus.config import ConfigError, load_config
from bccmt.corpus.maker import CorpusExistsError, make_corpus
from bccmt.logging_setup import setup_logging


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="mini-corpus YAML (conf/mini_corpus.yaml)")
    parser.add_argument("--out", required=True, help="output root of the corpus")
    parser.add_argument("--nj", type=int, default=1, help="parallel processes (output is the same "
                        "for any value)")
    parser.add_argument("--seed", type=int, default=None,
                        help="overrides the config's seed (part of the corpus identity)")
    args = parser.parse_args(argv)
    setup_logging()
    logging.info("%s", " ".join(sys.argv))
    if args.nj < 1:
        parser.error("--nj must be >= 1")
    try:
        cfg = load_config(args.config)
        if args.seed is not None:
            cfg.seed = args.seed
        logging.info("config %s (digest %s): %s", args.config, cfg.digest(), cfg.to_dict())
        make_corpus(cfg, args.out, args.nj)
    except (ConfigError, CorpusExistsError) as e:
        logging.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
