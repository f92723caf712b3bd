#!/usr/bin/env python3
"""Repairs a Kaldi data dir in place, like utils/fix_data_dir.sh.

Usage: fix_data_dir.py <data-dir>
Keeps only the utterances present in every per-utterance table (utt2spk, wav.scp, feats.scp,
utt2dur, utt2num_frames, ...), sorts every table (LC_ALL=C), rebuilds spk2utt, filters per-speaker
tables. The original tables are copied to <data-dir>/.backup/ first.
"""
import argparse
import sys

from bccmt.data import datadir, edit


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data_dir")
    edit.fix(p.parse_args().data_dir)


if __name__ == "__main__":
    sys.exit(datadir.run_cli(main))
