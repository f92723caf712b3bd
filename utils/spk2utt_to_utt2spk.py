#!/usr/bin/env python3
"""Kaldi spk2utt -> utt2spk, like utils/spk2utt_to_utt2spk.pl.

Usage: spk2utt_to_utt2spk.py [<spk2utt>|-] > utt2spk
Lines are written in input order (speaker by speaker).
"""
import argparse
import sys

from bccmt.data import datadir


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spk2utt", nargs="?", default="-", help="input file (default: stdin)")
    a = p.parse_args()
    table = datadir.read_kv("/dev/stdin" if a.spk2utt == "-" else a.spk2utt)
    for utt, spk in datadir.spk2utt_to_utt2spk({s: u.split() for s, u in table.items()}).items():
        sys.stdout.write(f"{utt} {spk}\n")


if __name__ == "__main__":
    sys.exit(datadir.run_cli(main))
