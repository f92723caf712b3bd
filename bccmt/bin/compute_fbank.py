"""One stage-1 feature job: wav.scp -> fbank ark/scp, utt2num_frames, skipped list, used config.

  python -m bccmt.bin.compute_fbank [--fbank-config conf/fbank.yaml] [--dither 0] \\
      [--on-error skip|fail] [--progress-every 500] <wav.scp> <out-prefix>
  python -m bccmt.bin.compute_fbank --check-config --fbank-config conf/fbank.yaml
writes <out-prefix>.{ark,scp,utt2num_frames,skipped,yaml} (see bccmt.features.job). Normally run
N times in parallel by local/make_fbank.sh.
"""

import argparse
import logging
import sys

from bccmt.features import FbankConfig, FbankConfigError, load_fbank_config
from bccmt.io.tables import TableError
from bccmt.logging_setup import setup_logging
from bccmt.features.job import FbankJobError, dump_fbank


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("wav_scp", nargs="?", help="wav.scp (or a part of it)")
    p.add_argument("out_prefix", nargs="?", help="output prefix, e.g. fbank/raw_fbank_vox1.1")
    p.add_argument("--check-config", action="store_true",
                   help="only check the feature config (exit 1 with the reason if it is bad)")
    p.add_argument("--fbank-config", help="YAML of FbankConfig fields (default: built-in defaults)")
    p.add_argument("--dither", type=float, help="override the config's dither (0 for eval sets)")
    p.add_argument("--on-error", choices=("skip", "fail"), default="skip",
                   help="bad audio: skip the utterance (listed in <out>.skipped) or fail the job")
    p.add_argument("--progress-every", type=int, default=500, help="log progress every N utterances")
    args = p.parse_args(argv)
    if not args.check_config and args.out_prefix is None:
        p.error("give <wav.scp> <out-prefix> (or --check-config)")
    setup_logging()
    log = logging.getLogger("compute_fbank")
    try:
        cfg = load_fbank_config(args.fbank_config) if args.fbank_config else FbankConfig()
        if args.dither is not None:
            cfg = FbankConfig.from_dict({**cfg.to_dict(), "dither": args.dither}, "--dither")
        if not args.check_config:
            dump_fbank(args.wav_scp, args.out_prefix, cfg, args.on_error, args.progress_every)
    except (FbankConfigError, TableError, FbankJobError) as e:
        log.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
