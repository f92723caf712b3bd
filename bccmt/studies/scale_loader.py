"""Training-loader throughput alone (no model): crops per second from a stage-1 data dir.

``reads="crop"`` is the training loader as it is (``CropDataset``: only the crop's rows are
read); ``reads="whole"`` reads and decodes the whole matrix with ``kaldiio.load_mat`` for every
crop, as the loader did before, so the two can be compared on the same data and crops.
"""

from __future__ import annotations

import time

import numpy as np

from bccmt.config import DataSection, SpecAugmentSection
from bccmt.features import FbankConfig
from bccmt.train.data import CropDataset, DataError, EpochBatchSampler, make_loader, take_crop

READS = ("crop", "whole")


class WholeMatrixCrops(CropDataset):
    """CropDataset reading each crop's whole matrix (the baseline of the crop reads)."""

    def read_crop(self, i, rng):
        import kaldiio

        try:
            mat = np.ascontiguousarray(kaldiio.load_mat(self.specs[i]), dtype=np.float32)
        except Exception as e:  # noqa: BLE001
            raise DataError(f"utterance '{self.utts[i]}': cannot read '{self.specs[i]}' ({e})") from e
        return take_crop(mat, self.crop_frames, rng)


def measure_loader(data_dir, crops: int, workers: int, reads: str = "crop",
                   spec_augment: bool = False, batch: int = 32, seed: int = 1) -> float:
    """Crops per wall second over one epoch of ``crops`` random 2 s crops (loader start included)."""
    if reads not in READS:
        raise ValueError(f"reads must be one of {READS}, got {reads!r}")
    cfg = DataSection(samples_per_epoch=crops, num_workers=workers,
                      spec_augment=SpecAugmentSection(enabled=spec_augment))
    cls = CropDataset if reads == "crop" else WholeMatrixCrops
    dataset = cls(data_dir, cfg, FbankConfig(), seed=seed)  # 10 ms frames, 80 bins
    sampler = EpochBatchSampler(len(dataset), batch, seed, crops)
    sampler.set_epoch(1)
    start, n = time.perf_counter(), 0
    for x, _ in make_loader(dataset, sampler, workers):
        n += x.shape[0]
    return n / (time.perf_counter() - start)


def voxceleb_lengths(n: int, seed: int = 0):
    """``n`` utterance lengths in 10 ms frames shaped like VoxCeleb2 dev: at least 4 s, mean about
    8 s, a long tail (4 s + an exponential of mean 4 s, cut at 60 s)."""
    rng = np.random.default_rng(seed)
    return np.minimum(400 + rng.exponential(400, n), 6000).astype(int)


def make_length_dir(out, lengths, compress: bool, speakers: int = 100, seed: int = 0):
    """A data dir of fbank-like random matrices with the given lengths (float32 or compressed):
    feats.scp, utt2num_frames, utt2spk. For loader measurements at VoxCeleb utterance lengths."""
    from pathlib import Path

    import kaldiio

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    keys = [f"spk{i % speakers:04d}-utt{i:06d}" for i in range(len(lengths))]
    scp, frames = [], []
    with open(out / "feats.ark", "wb") as ark:
        for key, t in zip(keys, lengths):
            x = (rng.standard_normal((int(t), 80)) * 2 + np.linspace(-6, 6, 80)).astype(np.float32)
            scp.append(f"{key} {(out / 'feats.ark').resolve()}:{ark.tell() + len(key) + 1}\n")
            kaldiio.save_ark(ark, {key: x}, compression_method=2 if compress else None)
            frames.append(f"{key} {int(t)}\n")
    order = np.argsort(keys)
    (out / "feats.scp").write_text("".join(scp[i] for i in order))
    (out / "utt2num_frames").write_text("".join(frames[i] for i in order))
    (out / "utt2spk").write_text("".join(f"{keys[i]} {keys[i].split('-')[0]}\n" for i in order))
    return out
