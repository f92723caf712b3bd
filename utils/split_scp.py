#!/usr/bin/env python3
"""Splits an scp (or any keyed list) into contiguous parts, like utils/split_scp.pl.

Usage: split_scp.py [--utt2spk <utt2spk>] <in.scp> <out1.scp> <out2.scp> ...
 e.g.: split_scp.py --utt2spk data/vox1/utt2spk data/vox1/wav.scp split/wav.1.scp split/wav.2.scp
Without --utt2spk part sizes differ by at most one line; with it, all of a speaker's lines go to
one part (speakers must be contiguous in the input). Lines are copied as they are, in order.
"""
import argparse
import sys

from bccmt.data import datadir


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--utt2spk", help="keep each speaker's lines in one part")
    p.add_argument("scp")
    p.add_argument("outputs", nargs="+")
    a = p.parse_args()
    lines = datadir.read_lines(a.scp)
    utt2spk = datadir.read_kv(a.utt2spk) if a.utt2spk else None
    keys = [line.split(maxsplit=1)[0] for line in lines] if utt2spk else lines
    start = 0
    for out, part in zip(a.outputs, datadir.split_scp(keys, len(a.outputs), utt2spk=utt2spk)):
        datadir.write_lines(out, lines[start:start + len(part)])
        start += len(part)


if __name__ == "__main__":
    sys.exit(datadir.run_cli(main))
