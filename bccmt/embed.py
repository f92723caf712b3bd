"""Embedding extraction (stage 4): one embedding per utterance of a data dir, by an exp's model.

Features. The model's exp dir holds the training feature config (config.yaml ``features``);
extraction uses it for the purpose "extraction" (bccmt.features.for_purpose: dither 0):
- if the data dir has feats.scp and fbank.yaml, fbank.yaml must equal the exp's features on every
  field except dither (a mismatch is an error naming the fields); stored features at extraction
  settings are used as they are, stored training features (dithered) are recomputed from wav.scp;
- a data dir without feats.scp is featurised from wav.scp on the fly.
Stage 1 stores the evaluation set and the backend subset at extraction settings, so stage 4 reads
them and never recomputes.

After the fbank. Each utterance's raw fbank goes whole into bccmt.inputs.EmbeddingGraph, the
module the export writes to ONNX: silence floor, tiling of short inputs, chunks of long ones, the
length cut, CMN, the model and the chunk mean all happen there, so an exported model fed the raw
fbank of a file gives the embedding this stage gives.

Batching. Inputs that are one chunk are cut ahead (EmbeddingGraph.batchable_input) and inputs of
equal length share a batch of at most ``batch_frames`` frames; unequal lengths are never padded,
because padding changes the output of models without masks. With ``length_quantum`` q = 16 a
VoxCeleb-like list falls into a few dozen lengths (several times faster on CPU than q = 1).
Results do not depend on the batching, the window or the number of jobs beyond float rounding, and
a rerun is bit-identical (inference mode, eval mode, no dither).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Dict, Iterator, List, Sequence, Tuple

import numpy as np
import torch
import yaml

from bccmt.exp import EmbeddingsDir, ExpLayout
from bccmt.features import FbankConfig, for_purpose, silence_floor
from bccmt.inputs import LENGTH_QUANTUM, MAX_CHUNK_FRAMES, EmbeddingGraph
from bccmt.io.tables import c_order, read_kv
from bccmt.io.vectors import iter_vectors, read_vectors, write_vectors

logger = logging.getLogger(__name__)


class ExtractError(RuntimeError):
    """Extraction cannot proceed or produced the wrong output; the message says what to fix."""


@dataclasses.dataclass
class ExtractConfig:
    max_chunk_frames: int = MAX_CHUNK_FRAMES  # longer utterances: chunks, embeddings averaged
    batch_frames: int = 5000  # max frames per batch of equal-length inputs (~16 x 3 s: fastest on CPU)
    length_quantum: int = LENGTH_QUANTUM  # chunk lengths fall on this grid (1 = every frame)
    window_utts: int = 512  # utterances loaded at once (bounds memory)
    device: str = "cpu"  # torch device


class FeatureSource:
    """(T, F) float32 raw fbank of a data dir's utterances, at the exp's extraction settings."""

    def __init__(self, data_dir, exp_features: FbankConfig):
        self.data_dir = Path(data_dir)
        self.training = exp_features
        self.cfg = for_purpose(exp_features, "extraction")
        feats_scp = self.data_dir / "feats.scp"
        fbank_yaml = self.data_dir / "fbank.yaml"
        self.use_feats = False
        if feats_scp.is_file():
            if not fbank_yaml.is_file():
                raise ExtractError(f"{feats_scp} exists but {fbank_yaml} does not: cannot check "
                                   "that the features match the model's feature config")
            have = _load_fbank(fbank_yaml)
            # dither is the one setting allowed to differ: training sets are dithered
            diff = have.differences(self.cfg, ignore=("dither",), names=("data", "model"))
            if diff:
                raise ExtractError(f"{fbank_yaml} does not match the model's feature config "
                                   f"(config.yaml 'features'): {', '.join(diff)}")
            if have.dither == self.cfg.dither:
                self.use_feats = True
            else:
                logger.info("%s has dither %s (training features): recomputing from wav.scp "
                            "at extraction settings", fbank_yaml, have.dither)
        self.table_file = feats_scp if self.use_feats else self.data_dir / "wav.scp"
        self.table = read_kv(self.table_file)
        logger.info("features for %s: %s", self.data_dir,
                    "feats.scp" if self.use_feats else "wav.scp, computed at extraction settings")

    def utterances(self) -> List[str]:
        return sorted(self.table, key=c_order)

    def __call__(self, utt: str) -> np.ndarray:
        spec = self.table[utt]
        try:
            if self.use_feats:
                import kaldiio

                feats = np.asarray(kaldiio.load_mat(spec), dtype=np.float32)
            else:
                from bccmt.audio import read_audio
                from bccmt.features import compute_fbank

                feats = compute_fbank(read_audio(spec, self.cfg.sample_rate), self.cfg)
        except Exception as e:  # noqa: BLE001 - any read failure: name the utterance
            raise ExtractError(
                f"{self.data_dir}: cannot get features of '{utt}' ({spec}): {e}") from e
        if feats.ndim != 2 or feats.shape[1] != self.cfg.num_mel_bins or feats.shape[0] == 0:
            raise ExtractError(f"{self.data_dir}: features of '{utt}' have shape {feats.shape}, "
                               f"expected (T>0, {self.cfg.num_mel_bins})")
        return feats


def _load_fbank(path: Path):
    from bccmt.features import FbankConfigError, load_fbank_config

    try:
        return load_fbank_config(path)
    except FbankConfigError as e:
        raise ExtractError(str(e)) from None


def embedding_graph(model: torch.nn.Module, features: FbankConfig,
                    cfg: ExtractConfig = ExtractConfig()) -> EmbeddingGraph:
    """The module that turns raw fbank into embeddings for a model trained on ``features``: stage
    4 runs it, the export writes it (with an export-mode copy of the model)."""
    return EmbeddingGraph(model, silence_floor(features), cfg.max_chunk_frames, cfg.length_quantum)


def embed_utterances(
    graph: EmbeddingGraph,
    utts: Sequence[str],
    get_feats,
    cfg: ExtractConfig = ExtractConfig(),
) -> Iterator[Tuple[str, np.ndarray]]:
    """Yields (utt, (D,) float32 embedding) for each utt, in the given order.

    get_feats(utt) -> (T, F) float32 raw fbank at extraction settings; ``graph`` does the rest."""
    device = torch.device(cfg.device)
    for w in range(0, len(utts), cfg.window_utts):
        window = utts[w:w + cfg.window_utts]
        inputs = [graph.batchable_input(get_feats(utt)) for utt in window]
        out: Dict[int, np.ndarray] = {}
        for batch in _equal_length_batches(inputs, cfg.batch_frames):
            x = torch.from_numpy(np.stack([inputs[i] for i in batch])).to(device)
            with torch.inference_mode():
                emb = graph(x).float().cpu().numpy()
            out.update(zip(batch, emb))
        for pos, utt in enumerate(window):
            vec = out[pos]
            if not np.all(np.isfinite(vec)):
                raise ExtractError(f"embedding of '{utt}' is not finite")
            yield utt, np.asarray(vec, dtype=np.float32)


def _equal_length_batches(inputs: List[np.ndarray], batch_frames: int):
    order = sorted(range(len(inputs)), key=lambda i: (inputs[i].shape[0], i))
    batch: List[int] = []
    for i in order:
        t = inputs[i].shape[0]
        if batch and (inputs[batch[0]].shape[0] != t or (len(batch) + 1) * t > batch_frames):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def extract_job(exp_dir, data_dir, out_dir, utts: Sequence[str] = None, part: int = None,
                cfg: ExtractConfig = ExtractConfig()) -> Tuple[Path, Path, int]:
    """Embeds utts (default: every utterance of data_dir) into out_dir/xvector[.part].{ark,scp}.

    Returns (ark, scp, n). One job of local/extract_embeddings.sh embeds one part of the list
    that ``utterances`` gives; merge_jobs joins the parts.
    """
    from bccmt.config import ConfigError
    from bccmt.exp import CheckpointError, load_embedding_model

    try:
        model, exp_cfg = load_embedding_model(exp_dir, device=cfg.device)
    except (CheckpointError, ConfigError) as e:
        raise ExtractError(str(e)) from None
    source = FeatureSource(data_dir, exp_cfg.features)
    if utts is None:
        utts = source.utterances()
    unknown = [u for u in utts if u not in source.table]
    if unknown:
        raise ExtractError(f"{len(unknown)} utterances not in {source.table_file}, "
                           f"e.g. {unknown[:3]}")
    ark, scp = EmbeddingsDir(out_dir).xvector(part)
    logger.info("%d utterances of %s -> %s", len(utts), data_dir, scp)
    graph = embedding_graph(model, exp_cfg.features, cfg).to(cfg.device).eval()
    n = write_vectors(ark, scp, embed_utterances(graph, list(utts), source, cfg))
    return ark, scp, n


def merge_jobs(out_dir, num_jobs: int) -> Tuple[Path, Path]:
    """Concatenates xvector.{1..N}.{ark,scp} (sorted contiguous parts) into xvector.{ark,scp}."""
    out = EmbeddingsDir(out_dir)
    jobs = [out.xvector(j) for j in range(1, num_jobs + 1)]
    parts = [scp for _, scp in jobs]
    missing = [str(p) for p in parts if not p.is_file()]
    if missing:
        raise ExtractError(f"job outputs missing: {', '.join(missing)}")

    def stream():
        for p in parts:
            yield from iter_vectors(p)

    ark, scp = out.xvector()
    write_vectors(ark, scp, stream())
    for job in jobs:
        for path in job:
            path.unlink()
    return ark, scp


def check_one_per_utterance(scp, source: "FeatureSource") -> int:
    """Exactly one embedding for every utterance the source lists (no extra, missing or dup)."""
    keys = list(read_kv(scp))  # read_kv rejects duplicate keys, naming the line
    want = set(source.table)
    have = set(keys)
    missing, extra = sorted(want - have), sorted(have - want)
    if missing or extra:
        raise ExtractError(f"{scp}: {len(keys)} embeddings for {len(want)} utterances of "
                           f"{source.table_file}; missing {len(missing)} (e.g. {missing[:3]}), "
                           f"unexpected {len(extra)} (e.g. {extra[:3]})")
    return len(keys)


def feature_source(exp_dir, data_dir) -> "FeatureSource":
    """The FeatureSource extraction uses for data_dir under exp_dir's config (no model loaded)."""
    from bccmt.config import ConfigError
    from bccmt.exp import read_resolved

    try:
        cfg = read_resolved(ExpLayout(exp_dir).config)
    except ConfigError as e:
        raise ExtractError(str(e)) from None
    return FeatureSource(data_dir, cfg.features)


def speaker_means(scp, utt2spk_file, out_dir) -> int:
    """Writes out_dir/spk_xvector.{ark,scp}: the plain mean of each speaker's embeddings."""
    utt2spk = read_kv(utt2spk_file)
    keys, emb = read_vectors(scp)
    missing = [k for k in keys if k not in utt2spk]
    if missing:
        raise ExtractError(f"{utt2spk_file}: no speaker for {len(missing)} utterances of {scp}, "
                           f"e.g. {missing[:3]}")
    from bccmt.backend import speaker_means as mean_of_speakers

    uniq, means = mean_of_speakers([utt2spk[k] for k in keys], emb)
    return write_vectors(*EmbeddingsDir(out_dir).spk_xvector,
                         ((str(s), m) for s, m in zip(uniq, means)))


def copy_utt2spk(data_dir, out_dir) -> None:
    """out_dir/utt2spk for the embedded utterances, so an embeddings dir is self-contained."""
    from bccmt.io.tables import write_kv

    out = EmbeddingsDir(out_dir)
    src = Path(data_dir) / "utt2spk"
    if src.is_file():
        keys = set(read_kv(out.xvector_scp))
        write_kv(out.utt2spk, {u: s for u, s in read_kv(src).items() if u in keys})


def write_extract_info(out_dir, exp_dir, data_dir, cfg: ExtractConfig, n: int) -> None:
    """Records how the embeddings were made (out_dir/extract.yaml)."""
    from bccmt.io.tables import atomic_write

    info = {"exp_dir": str(exp_dir), "data_dir": str(data_dir), "num_embeddings": n,
            **dataclasses.asdict(cfg)}
    with atomic_write(EmbeddingsDir(out_dir).extract_info, encoding="utf-8") as f:
        yaml.safe_dump(info, f, sort_keys=False)
