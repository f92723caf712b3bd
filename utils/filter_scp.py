#!/usr/bin/env python3
"""Prints the lines of an scp whose key is in an id list, like utils/filter_scp.pl.

Usage: filter_scp.py [--exclude] <id-list> <scp> > out.scp
 e.g.: filter_scp.py data/vox1/split4/1/utt2spk data/vox1/feats.scp
The id list's first field is the id; lines are printed as they are, in the scp's order.
--exclude prints the other lines.
"""
import argparse
import sys

from bccmt.data import datadir


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exclude", action="store_true",
                   help="print the lines whose key is NOT in the list")
    p.add_argument("id_list")
    p.add_argument("scp", nargs="?", default="-", help="input scp (default: stdin)")
    a = p.parse_args()
    ids = datadir.read_id_list(a.id_list)
    for line in datadir.filter_lines(ids, datadir.read_lines(a.scp), exclude=a.exclude):
        sys.stdout.write(line + "\n")


if __name__ == "__main__":
    sys.exit(datadir.run_cli(main))
