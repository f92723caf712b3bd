"""Training data: feats.scp + utt2spk -> fixed-length random fbank crops with CMN and labels.

Reproducibility: every crop is drawn from its own generator seeded by (seed, epoch, position in the
epoch), so the data seen at step k of epoch e does not depend on worker count, on the number of
ranks, or on whether training was resumed.

Short utterances (policy ``data.short_policy``): utterances shorter than ``data.min_seconds`` are
always dropped (logged). Those between ``min_seconds`` and the crop length are either tiled
(``repeat``: the utterance is repeated end to end, then cropped, as WeSpeaker does) or dropped
(``drop``). Crops are mean-normalised with ``bccmt.features.apply_cmn`` (the mean of the crop, the
function extraction applies to whole utterances).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch

from bccmt.features import FbankConfig, apply_cmn
from bccmt.io import TableError, c_order, read_kv
from bccmt.io.matrices import MatrixReader
from bccmt.config import DataSection, SpecAugmentSection

log = logging.getLogger(__name__)


class DataError(ValueError):
    """A training data directory that cannot be used; the message names the file."""


def make_spk2idx(utt2spk: Dict[str, str]) -> Dict[str, int]:
    """Stable speaker index map: speakers sorted in byte order -> 0..S-1."""
    return {s: i for i, s in enumerate(sorted(set(utt2spk.values()), key=c_order))}


def _num_frames(data_dir: Path, feats: Dict[str, str]) -> Dict[str, int]:
    path = data_dir / "utt2num_frames"
    if path.exists():
        table = read_kv(path)
        out = {}
        for utt in feats:
            if utt not in table:
                raise DataError(f"{path}: no entry for utterance '{utt}' of feats.scp")
            try:
                out[utt] = int(table[utt])
            except ValueError:
                raise DataError(f"{path}: utterance '{utt}': '{table[utt]}' is not an integer") from None
        return out
    import kaldiio

    log.warning("%s missing: reading every matrix to get lengths (slow)", path)
    return {utt: kaldiio.load_mat(spec).shape[0] for utt, spec in feats.items()}


class CropDataset(torch.utils.data.Dataset):
    """Random crops of a Kaldi data dir. Index = (epoch, position, utterance index).

    Returns (feats (crop_frames, F) float32 mean-normalised log-Mel, speaker index int).
    ``features``: the data dir's fbank config (its frame shift turns seconds into frames;
    F = its num_mel_bins).
    """

    def __init__(self, data_dir, cfg: DataSection, features: FbankConfig, seed: int,
                 spk2idx: Optional[Dict[str, int]] = None):
        data_dir = Path(data_dir)
        try:
            feats = read_kv(data_dir / "feats.scp")
            utt2spk = read_kv(data_dir / "utt2spk")
        except TableError as e:
            raise DataError(f"{e} (run stage 1 to make features)") from None
        missing = [u for u in feats if u not in utt2spk]
        if missing:
            raise DataError(f"{data_dir}/utt2spk: no speaker for utterance '{missing[0]}' "
                            f"({len(missing)} of feats.scp missing)")
        self.cfg, self.seed = cfg, seed
        self.crop_frames = int(round(cfg.crop_seconds * 1000.0 / features.frame_shift_ms))
        min_frames = int(round(cfg.min_seconds * 1000.0 / features.frame_shift_ms))
        if cfg.short_policy == "drop":
            min_frames = max(min_frames, self.crop_frames)
        lengths = _num_frames(data_dir, feats)
        self.spk2idx = spk2idx if spk2idx is not None else make_spk2idx(utt2spk)
        unknown = sorted({utt2spk[u] for u in feats} - set(self.spk2idx))
        if unknown:
            raise DataError(f"{data_dir}: speaker(s) {unknown[:3]} not in the stored speaker map "
                            f"({len(unknown)} unknown); the data dir changed since the checkpoint")
        keep = [u for u in feats if lengths[u] >= min_frames]
        dropped = len(feats) - len(keep)
        if dropped:
            log.info("dropped %d of %d utterances shorter than %d frames (policy %s)",
                     dropped, len(feats), min_frames, cfg.short_policy)
        if not keep:
            raise DataError(f"{data_dir}: no utterance has >= {min_frames} frames")
        self.utts: List[str] = keep
        self.specs = [feats[u] for u in keep]
        self.lengths = np.array([lengths[u] for u in keep], dtype=np.int64)
        self.labels = np.array([self.spk2idx[utt2spk[u]] for u in keep], dtype=np.int64)
        self.num_repeated = int((self.lengths < self.crop_frames).sum())
        self.feat_dim = int(features.num_mel_bins)
        self._reader = MatrixReader()

    def __len__(self) -> int:
        return len(self.utts)

    @property
    def num_speakers(self) -> int:
        return len(self.spk2idx)

    def rng(self, epoch: int, position: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, epoch, position])

    def load_crop(self, i: int, rng: np.random.Generator, augment: bool = True) -> np.ndarray:
        """(crop_frames, F) float32: a random crop of utterance i, mean-normalised, maybe masked."""
        crop = apply_cmn(self.read_crop(i, rng))
        if augment and self.cfg.spec_augment.enabled:
            crop = spec_augment(crop, self.cfg.spec_augment, rng)
        return np.ascontiguousarray(crop)

    def read_crop(self, i: int, rng: np.random.Generator) -> np.ndarray:
        """(crop_frames, F) float32: the raw rows of a random crop of utterance i.

        Reads only the crop's rows (``bccmt.io.matrices.MatrixReader``); an utterance shorter than
        the crop is read whole and tiled. Equal to cropping ``kaldiio.load_mat`` with take_crop
        (same draws from rng, same values bit for bit)."""
        spec, frames, length = self.specs[i], self.crop_frames, int(self.lengths[i])
        try:
            head = self._reader.header(spec)
            if head is not None and head.rows != length:
                raise DataError(f"utterance '{self.utts[i]}': {spec} holds {head.rows} frames but "
                                f"utt2num_frames says {length} (features rewritten since?)")
            if length >= frames:
                start = int(rng.integers(0, length - frames + 1))
                mat = self._reader.read_rows(spec, start, start + frames, head)
            else:
                mat = take_crop(self._reader.read_rows(spec, 0, length, head), frames, rng)
        except DataError:
            raise
        except Exception as e:  # noqa: BLE001 - name the utterance whatever the reader raised
            raise DataError(f"utterance '{self.utts[i]}': cannot read '{spec}' ({e})") from e
        if mat.shape != (frames, self.feat_dim):
            raise DataError(f"utterance '{self.utts[i]}': {spec} gave a {mat.shape} crop, expected "
                            f"({frames}, {self.feat_dim})")
        return mat

    def __getitem__(self, index: Tuple[int, int, int]):
        epoch, position, i = index
        crop = self.load_crop(i, self.rng(epoch, position))
        return torch.from_numpy(crop), int(self.labels[i])


def take_crop(mat: np.ndarray, frames: int, rng: np.random.Generator) -> np.ndarray:
    """A random (frames, F) window of mat (T, F); a shorter mat is tiled to length first."""
    if mat.shape[0] == 0:
        raise ValueError("empty feature matrix")
    if mat.shape[0] < frames:
        reps = -(-frames // mat.shape[0])
        mat = np.concatenate([mat] * reps, axis=0)
    start = int(rng.integers(0, mat.shape[0] - frames + 1))
    return mat[start:start + frames]


def spec_augment(x: np.ndarray, cfg: SpecAugmentSection, rng: np.random.Generator) -> np.ndarray:
    """Zeroes random frequency bands and time spans of x (T, F) (after CMN, so 0 = the mean)."""
    x = x.copy()
    t, f = x.shape
    for _ in range(cfg.freq_masks):
        w = int(rng.integers(0, cfg.freq_width + 1))
        s = int(rng.integers(0, max(1, f - w + 1)))
        x[:, s:s + w] = 0.0
    for _ in range(cfg.time_masks):
        w = int(rng.integers(0, cfg.time_width + 1))
        s = int(rng.integers(0, max(1, t - w + 1)))
        x[s:s + w, :] = 0.0
    return x


class EpochBatchSampler(torch.utils.data.Sampler):
    """Yields this rank's share of each global batch as [(epoch, position, utt index), ...].

    The epoch's order is a permutation seeded by (seed, epoch), repeated (fresh permutations) until
    ``samples_per_epoch`` crops; the last incomplete global batch is dropped. Global batch k is
    positions [k*B, (k+1)*B); rank r takes the r-th contiguous slice of B / world_size, so a
    multi-rank run sees exactly the crops of a single-process run. Call set_epoch() each epoch.
    """

    def __init__(self, num_utts: int, batch_size: int, seed: int, samples_per_epoch=None,
                 rank: int = 0, world_size: int = 1, start_step: int = 0):
        if batch_size % world_size:
            raise ValueError(f"train.batch_size {batch_size} is not divisible by {world_size} ranks")
        self.num_utts, self.batch_size, self.seed = num_utts, batch_size, seed
        self.samples = samples_per_epoch or num_utts
        if self.samples < batch_size:
            raise ValueError(f"{self.samples} crops per epoch < batch size {batch_size}")
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start_step = 0, start_step

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        self.epoch, self.start_step = epoch, start_step

    def steps_per_epoch(self) -> int:
        return self.samples // self.batch_size

    def order(self) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.epoch, 12345])
        reps = -(-self.samples // self.num_utts)
        return np.concatenate([rng.permutation(self.num_utts) for _ in range(reps)])[: self.samples]

    def __iter__(self) -> Iterator[List[Tuple[int, int, int]]]:
        order = self.order()
        per_rank = self.batch_size // self.world_size
        for step in range(self.start_step, self.steps_per_epoch()):
            first = step * self.batch_size + self.rank * per_rank
            yield [(self.epoch, p, int(order[p])) for p in range(first, first + per_rank)]

    def __len__(self) -> int:
        return self.steps_per_epoch() - self.start_step


def collate(items):
    feats = torch.stack([x for x, _ in items])
    labels = torch.tensor([y for _, y in items], dtype=torch.long)
    return feats, labels


def make_loader(dataset: CropDataset, sampler: EpochBatchSampler, num_workers: int,
                pin_memory: bool = False):
    """A DataLoader over the batch sampler (workers are forked only when num_workers > 0)."""
    kwargs = {"pin_memory": pin_memory}
    if num_workers > 0:
        # persistent: forked once, not every epoch (a re-fork re-faults the parent's pages: seconds
        # per epoch start at VoxCeleb size). Safe: the epoch travels in the sampler's indices and
        # the dataset keeps no per-epoch state.
        kwargs.update(num_workers=num_workers, persistent_workers=True, prefetch_factor=4,
                      worker_init_fn=_worker_init)
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, **kwargs)


def _worker_init(_):
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"
