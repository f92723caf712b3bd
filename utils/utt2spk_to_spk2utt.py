#!/usr/bin/env python3
"""Kaldi utt2spk -> spk2utt, like utils/utt2spk_to_spk2utt.pl.

Usage: utt2spk_to_spk2utt.py [<utt2spk>|-] > spk2utt
Speakers are written in order of first appearance, each followed by its utterances in input order.
"""
import argparse
import sys

from bccmt.data import datadir


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("utt2spk", nargs="?", default="-", help="input file (default: stdin)")
    a = p.parse_args()
    utt2spk = datadir.read_kv("/dev/stdin" if a.utt2spk == "-" else a.utt2spk)
    for spk, utts in datadir.utt2spk_to_spk2utt(utt2spk).items():
        sys.stdout.write(f"{spk} {' '.join(utts)}\n")


if __name__ == "__main__":
    sys.exit(datadir.run_cli(main))
