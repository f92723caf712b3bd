"""One stage-1 feature job: wav.scp -> fbank ark/scp, utt2num_frames, skipped list, used config.

  python -m bccmt.bin.compute_fbank [--fbank-config conf/fbank.yaml] [--purpose extraction] \\
      [--on-error skip|fail] [--compress] [--progress-every 500] <wav.scp> <out-prefix>
  python -m bccmt.bin.compute_fbank --check-config --fbank-config conf/fbank.yaml
  python -m bccmt.bin.compute_fbank --same-config <a.yaml> <b.yaml> ...
writes <out-prefix>.{ark,scp,utt2num_frames,skipped,yaml} (see bccmt.features.job). Normally run
N times in parallel by local/make_fbank.sh.
"""

import argparse
import logging
import sys

from bccmt.features import (PURPOSES, FbankConfig, FbankConfigError, for_purpose,
                            load_fbank_config)
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
    p.add_argument("--purpose", choices=PURPOSES, default="training",
                   help="training: the config's dither; extraction: dither 0 (evaluation sets, "
                        "the backend subset; bccmt.features.for_purpose)")
    p.add_argument("--same-config", nargs="+", metavar="YAML",
                   help="only check that these fbank YAMLs hold the same config (exit 1 naming "
                        "the file and the fields that differ)")
    p.add_argument("--on-error", choices=("skip", "fail"), default="skip",
                   help="bad audio: skip the utterance (listed in <out>.skipped) or fail the job")
    p.add_argument("--compress", action="store_true",
                   help="write Kaldi-compressed matrices (copy-feats --compress=true; a quarter of "
                        "the disk, |error| <= ~0.03 in log-Mel) instead of float32")
    p.add_argument("--progress-every", type=int, default=500, help="log progress every N utterances")
    args = p.parse_args(argv)
    if not (args.check_config or args.same_config) and args.out_prefix is None:
        p.error("give <wav.scp> <out-prefix> (or --check-config, --same-config)")
    setup_logging()
    log = logging.getLogger("compute_fbank")
    try:
        if args.same_config:
            return _same_config(args.same_config, log)
        cfg = for_purpose(load_fbank_config(args.fbank_config) if args.fbank_config
                          else FbankConfig(), args.purpose)
        if not args.check_config:
            dump_fbank(args.wav_scp, args.out_prefix, cfg, args.on_error, args.progress_every,
                       compress=args.compress)
    except (FbankConfigError, TableError, FbankJobError) as e:
        log.error("%s", e)
        return 1
    return 0


def _same_config(paths, log) -> int:
    """0 if every YAML holds the config of the first (FbankConfig.differences), else 1."""
    first = load_fbank_config(paths[0])
    bad = 0
    for path in paths[1:]:
        diff = first.differences(load_fbank_config(path), names=(paths[0], path))
        if diff:
            log.error("%s and %s hold different feature configs: %s", paths[0], path,
                      "; ".join(diff))
            bad = 1
    return bad


if __name__ == "__main__":
    sys.exit(main())
