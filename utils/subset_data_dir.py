#!/usr/bin/env python3
"""Copies part of a Kaldi data dir, like utils/subset_data_dir.sh.

Usage: subset_data_dir.py [--seed S] <N> <src-dir> <dst-dir>          (N random utterances;
                                         Kaldi's order <src-dir> <N> <dst-dir> works too)
       subset_data_dir.py --utt-list <file> <src-dir> <dst-dir>        (listed utterances)
       subset_data_dir.py --spk-list <file> <src-dir> <dst-dir>        (listed speakers)
 e.g.: subset_data_dir.py --seed 1 1000 data/vox2_dev data/vox2_dev_1k
List files give one id per line (first field). fbank.yaml is copied along.
"""
import argparse
import sys

from bccmt.data import datadir, edit


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--utt-list", help="file of utterance ids to keep")
    which.add_argument("--spk-list", help="file of speaker ids to keep")
    p.add_argument("--seed", type=int, default=0, help="seed for picking N utterances (default 0)")
    p.add_argument("args", nargs="+", metavar="[N] src dst")
    a = p.parse_args()
    want = 2 if (a.utt_list or a.spk_list) else 3
    if len(a.args) != want:
        p.error("expected " + ("<src-dir> <dst-dir>" if want == 2 else "<N> <src-dir> <dst-dir>"))
    if want == 3:
        if a.args[0].isdigit():
            n, src, dst = a.args
        elif a.args[1].isdigit():  # Kaldi's order: <src-dir> <N> <dst-dir>
            src, n, dst = a.args
        else:
            p.error(f"N must be a positive integer, got '{a.args[0]}'")
        edit.subset(src, dst, n=int(n), seed=a.seed)
    elif a.utt_list:
        edit.subset(a.args[0], a.args[1], utt_list=datadir.read_id_list(a.utt_list))
    else:
        edit.subset(a.args[0], a.args[1], spk_list=datadir.read_id_list(a.spk_list))


if __name__ == "__main__":
    sys.exit(datadir.run_cli(main))
