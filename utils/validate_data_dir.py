#!/usr/bin/env python3
"""Checks a Kaldi data dir, like utils/validate_data_dir.sh; exits 1 listing every problem.

Usage: validate_data_dir.py [--no-feats|--need-feats] [--no-wav] <data-dir>
 e.g.: validate_data_dir.py --need-feats data/vox1
Checks: utt2spk/spk2utt present and in agreement, every table sorted (LC_ALL=C) with unique keys,
wav.scp / feats.scp / utt2dur / utt2num_frames (when present or required) covering exactly the
utterances of utt2spk, positive durations and frame counts.
"""
import argparse
import logging
import sys

from bccmt.data import datadir


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    feats = p.add_mutually_exclusive_group()
    feats.add_argument("--need-feats", dest="need_feats", action="store_true",
                       help="require feats.scp")
    feats.add_argument("--no-feats", dest="need_feats", action="store_false",
                       help="do not require feats.scp (default; checked if present)")
    p.add_argument("--no-wav", dest="need_wav", action="store_false",
                   help="do not require wav.scp (checked if present)")
    p.add_argument("data_dir")
    a = p.parse_args()
    info = datadir.validate(a.data_dir, need_feats=a.need_feats, need_wav=a.need_wav)
    logging.info("validate_data_dir.py: %s is valid: %d utterances, %d speakers", a.data_dir,
                 info["utterances"], info["speakers"])


if __name__ == "__main__":
    sys.exit(datadir.run_cli(main))
