"""One stage-1 augmentation job: part JOB of N of a data dir -> augmented wavs + table fragments.

  python -m bccmt.bin.augment_data_dir --type noise --musan-root R [--rirs-root R] [--seed 1234] \\
      [--subset N] [--job 1 --num-jobs 2] --wav-dir data/vox2_dev_noise/wav \\
      data/vox2_dev data/vox2_dev_noise/tmp/part.1
writes <out-prefix>.{wav.scp,utt2spk,utt2dur,aug_info,skipped,rescaled} (see bccmt.augment.job)
and the wavs under --wav-dir. Normally run N times in parallel by local/augment_data_dir.sh.
"""

import argparse
import logging
import sys

from bccmt.augment import TYPES, AugmentError, list_sources
from bccmt.io.tables import TableError
from bccmt.logging_setup import setup_logging
from bccmt.augment.job import AugmentJobError, augment_part


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("src_dir", nargs="?", help="source data dir (wav.scp, utt2spk)")
    p.add_argument("out_prefix", nargs="?", help="prefix of this job's table fragments")
    p.add_argument("--type", required=True, nargs="+", choices=TYPES,
                   help="augmentation type (several only with --check-sources)")
    p.add_argument("--check-sources", action="store_true",
                   help="only check that each type's source files are there (exit 1 if not)")
    p.add_argument("--wav-dir", help="where the augmented wavs go")
    p.add_argument("--musan-root", help="MUSAN root (noise, music, babble)")
    p.add_argument("--rirs-root", help="RIRS_NOISES root (reverb)")
    p.add_argument("--seed", type=int, default=1234, help="seed (with type and utt id)")
    p.add_argument("--subset", type=int, help="augment only this many random utterances")
    p.add_argument("--job", type=int, default=1, help="this job's part, 1-based")
    p.add_argument("--num-jobs", type=int, default=1, help="number of parts")
    p.add_argument("--progress-every", type=int, default=500, help="log progress every N utterances")
    args = p.parse_args(argv)
    if not args.check_sources and (args.out_prefix is None or args.wav_dir is None
                                   or len(args.type) != 1):
        p.error("a job needs <src-dir> <out-prefix>, --wav-dir and one --type")
    setup_logging()
    try:
        if args.check_sources:
            for t in args.type:
                list_sources(t, args.musan_root or None, args.rirs_root or None)
            return 0
        augment_part(args.src_dir, args.type[0], args.out_prefix, args.wav_dir, args.musan_root,
                     args.rirs_root, seed=args.seed, subset=args.subset, job=args.job,
                     num_jobs=args.num_jobs, progress_every=args.progress_every)
    except (AugmentError, AugmentJobError, TableError, ValueError) as e:
        logging.getLogger("augment_data_dir").error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
