#!/usr/bin/env python3
"""Combines Kaldi data dirs, like utils/combine_data.sh.

Usage: combine_data_dir.py <dst-dir> <src-dir1> <src-dir2> ...
 e.g.: combine_data_dir.py data/vox2_dev_aug data/vox2_dev data/vox2_dev_reverb data/vox2_dev_noise
Utterance ids must be unique across the sources (an error names the duplicates). Tables present in
only some sources are left out, with a warning; spk2utt is rebuilt.
"""
import argparse
import sys

from bccmt.data import datadir, edit


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dst")
    p.add_argument("srcs", nargs="+")
    a = p.parse_args()
    edit.combine(a.dst, *a.srcs)


if __name__ == "__main__":
    sys.exit(datadir.run_cli(main))
