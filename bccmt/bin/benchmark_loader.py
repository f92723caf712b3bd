"""Training data loader throughput alone (no model): crops per second from a stage-1 data dir.

    python -m bccmt.bin.benchmark_loader --data data/vox2_dev_aug [--crops 2048] [--workers 0 1] \
        [--reads crop whole]

Prints a markdown table: workers, SpecAugment, crops/s and seconds of audio per wall second. Compare
with the model's samples/s in exp/<m>/train.log: the loader must be much faster, or it starves it.
"""

import argparse

import torch

from bccmt.logging_setup import setup_logging
from bccmt.studies.scale_loader import READS, measure_loader


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="data dir with feats.scp, utt2spk, utt2num_frames")
    p.add_argument("--crops", type=int, default=2048, help="crops per measurement")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1], help="DataLoader workers")
    p.add_argument("--reads", nargs="+", choices=READS, default=["crop"],
                   help="crop: the loader (reads the crop's rows); whole: load_mat per crop")
    args = p.parse_args(argv)
    setup_logging()
    torch.set_num_threads(1)
    print("| reads | workers | SpecAugment | crops/s | s audio / s |\n|---|---|---|---|---|")
    for reads in args.reads:
        for workers in args.workers:
            for sa in (False, True):
                rate = measure_loader(args.data, args.crops, workers, reads, sa, args.batch_size)
                print(f"| {reads} | {workers} | {'on' if sa else 'off'} | {rate:.0f} | "
                      f"{2 * rate:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
