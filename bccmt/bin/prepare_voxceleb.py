"""Stage 0 data preparation: VoxCeleb1/2 roots -> Kaldi data dirs and trial lists.

  python -m bccmt.bin.prepare_voxceleb --vox1-root R1 --vox2-root R2 [--trials-dir D] [--nj N] data
writes data/vox2_dev, data/vox1 and data/vox1/trials/*.kaldi (see bccmt.data.voxceleb).
"""

import argparse
import logging
import sys
from pathlib import Path

from bccmt.io.tables import TableError
from bccmt.logging_setup import setup_logging
from bccmt.data.voxceleb import PrepError, prepare_voxceleb


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("data_root", type=Path, help="output root, e.g. data")
    p.add_argument("--vox1-root", type=Path, help="VoxCeleb1 root holding wav/ (eval set)")
    p.add_argument("--vox2-root", type=Path, help="VoxCeleb2 root holding dev/aac or dev/wav (train)")
    p.add_argument("--trials-dir", type=Path,
                   help="dir with veri_test2.txt etc. (default: the VoxCeleb1 root)")
    p.add_argument("--nj", type=int, default=1, help="processes reading file headers")
    args = p.parse_args(argv)
    setup_logging()
    try:
        prepare_voxceleb(args.data_root, args.vox1_root, args.vox2_root, args.trials_dir, args.nj)
    except (PrepError, TableError) as e:
        logging.getLogger(__name__).error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
