"""Training data loader throughput alone (no model): crops per second from a stage-1 data dir.

    python -m bccmt.bin.benchmark_loader --data data/vox2_dev_aug [--crops 2048] [--workers 0 1]

Prints a markdown table: workers, SpecAugment, crops/s and seconds of audio per wall second. Compare
with the model's samples/s in exp/<m>/train.log: the loader must be much faster, or it starves it.
"""

import argparse
import time

import torch

from bccmt.logging_setup import setup_logging
from bccmt.config import DataSection, SpecAugmentSection
from bccmt.features import FbankConfig
from bccmt.train.data import CropDataset, EpochBatchSampler, make_loader


def measure(data_dir: str, crops: int, batch: int, workers: int, spec_augment: bool) -> float:
    """Crops per wall second for one epoch of ``crops`` random 2 s crops."""
    cfg = DataSection(samples_per_epoch=crops, num_workers=workers,
                      spec_augment=SpecAugmentSection(enabled=spec_augment))
    dataset = CropDataset(data_dir, cfg, FbankConfig(), seed=1)  # 10 ms frames, 80 bins
    sampler = EpochBatchSampler(len(dataset), batch, 1, crops)
    sampler.set_epoch(1)
    start, n = time.perf_counter(), 0
    for x, _ in make_loader(dataset, sampler, workers):
        n += x.shape[0]
    return n / (time.perf_counter() - start)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="data dir with feats.scp, utt2spk, utt2num_frames")
    p.add_argument("--crops", type=int, default=2048, help="crops per measurement")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1], help="DataLoader workers")
    args = p.parse_args(argv)
    setup_logging()
    torch.set_num_threads(1)
    print("| workers | SpecAugment | crops/s | s audio / s |\n|---|---|---|---|")
    for workers in args.workers:
        for sa in (False, True):
            rate = measure(args.data, args.crops, args.batch_size, workers, sa)
            print(f"| {workers} | {'on' if sa else 'off'} | {rate:.0f} | {2 * rate:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
