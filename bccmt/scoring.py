"""Stage 5: score trial lists with cosine / AS-norm / PLDA and write scores plus metrics
(entry point: bccmt.bin.score_trials, called by local/score.sh).

Inputs: training-set embeddings exp/X/embeddings/<train-set>/{xvector.scp, spk_xvector.scp,
utt2spk} (mean vector, AS-norm cohort, LDA/PLDA training data) and evaluation embeddings
exp/X/embeddings/<eval-set>/xvector.scp, where <eval-set> defaults to the data dir two levels above
each trials file (data/vox1/trials/x.kaldi -> vox1).
Outputs: exp/X/scores/<trials-name>.<backend>.score (``enroll test score`` per trial, trial order)
and .result (EER %, minDCF(0.01), minDCF(0.001), thresholds, backend description).
Every trial key must have an embedding (checked for all lists before anything is scored), and
no trial speaker may be a training speaker (the cohort and the PLDA never see them).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from bccmt.backend import asnorm_scores, cosine_scores, speaker_means
from bccmt.backend.plda import train_plda_backend
from bccmt.exp import EmbeddingsDir, ExpLayout, score_files
from bccmt.io.scores import format_metrics, write_result, write_scores
from bccmt.io.tables import read_kv, read_trials
from bccmt.io.vectors import read_vectors
from bccmt.metrics import compute_metrics

logger = logging.getLogger(__name__)
BACKENDS = ("cosine", "asnorm", "plda")


class ScoringError(RuntimeError):
    """Inputs that cannot be scored; the message names the files and keys."""


class TrainSide:
    """Training-set statistics, computed lazily once and shared by all trial lists."""

    def __init__(self, emb_dir: EmbeddingsDir, top_n: int, lda_dim: Optional[int],
                 plda_iters: int):
        self.files = emb_dir
        self.dir = emb_dir.root
        scp = emb_dir.xvector_scp
        if not scp.is_file():
            raise ScoringError(f"{scp}: no training-set embeddings (run stage 4 for this set)")
        self.keys, self.emb = read_vectors(scp)
        self.mean = self.emb.astype(np.float64).mean(axis=0)
        self.top_n, self.lda_dim, self.plda_iters = top_n, lda_dim, plda_iters
        self._utt2spk: Optional[Dict[str, str]] = None
        self._cohort = None
        self._plda = None

    @property
    def utt2spk(self) -> Dict[str, str]:
        if self._utt2spk is None:
            path = self.files.utt2spk
            if not path.is_file():
                raise ScoringError(f"{path}: missing (stage 4 copies it from the data dir)")
            self._utt2spk = read_kv(path)
            missing = [k for k in self.keys if k not in self._utt2spk]
            if missing:
                raise ScoringError(f"{path}: no speaker for {len(missing)} embeddings, "
                                   f"e.g. {missing[:3]}")
        return self._utt2spk

    def labels(self) -> np.ndarray:
        return np.array([self.utt2spk[k] for k in self.keys])

    def cohort(self) -> np.ndarray:
        if self._cohort is None:
            scp = self.files.spk_xvector_scp
            if scp.is_file():
                self._cohort = read_vectors(scp)[1]
            else:
                logger.warning("%s missing: averaging speakers in memory", scp)
                self._cohort = speaker_means(self.labels(), self.emb)[1]
        return self._cohort

    def plda(self):
        if self._plda is None:
            self._plda = train_plda_backend(self.emb, self.labels(), lda_dim=self.lda_dim,
                                            num_iters=self.plda_iters)
        return self._plda

    def describe(self, backend: str) -> Dict[str, object]:
        d: Dict[str, object] = {"train_embeddings": str(self.files.xvector_scp),
                                "num_train_utts": len(self.keys),
                                "mean": "training-set mean of xvector.scp, subtracted"}
        if backend == "asnorm":
            c = self.cohort()
            d.update(cohort=f"{c.shape[0]} training speaker means ({self.files.spk_xvector_scp})",
                     top_n=min(self.top_n, c.shape[0]))
        if backend == "plda":
            b = self.plda()
            d.update(num_train_speakers=int(np.unique(self.labels()).size),
                     lda_dim=None if b.lda is None else int(b.lda.shape[1]),
                     plda_dim=int(b.plda.psi.size), plda_em_iters=self.plda_iters,
                     length_norm=True)
        return d


def eval_set_of(trials: Path) -> str:
    """data/vox1/trials/x.kaldi -> vox1 (the data dir two levels above the trials file)."""
    return trials.absolute().parent.parent.name


def trial_indices(trials, keys: List[str], scp: Path, trials_path: Path):
    index = {k: i for i, k in enumerate(keys)}
    missing = sorted({u for e, t, _ in trials for u in (e, t) if u not in index})
    if missing:
        raise ScoringError(f"{trials_path}: {len(missing)} trial utterances have no embedding in "
                           f"{scp}, e.g. {', '.join(missing[:5])}")
    enroll = np.fromiter((index[e] for e, _, _ in trials), dtype=np.int64, count=len(trials))
    test = np.fromiter((index[t] for _, t, _ in trials), dtype=np.int64, count=len(trials))
    labels = np.fromiter((lab for _, _, lab in trials), dtype=bool, count=len(trials))
    return enroll, test, labels


def check_speaker_overlap(eval_dir: EmbeddingsDir, trials, train: TrainSide,
                          trials_path: Path) -> None:
    """Fails if a trial utterance belongs to a training speaker (needs eval utt2spk)."""
    path = eval_dir.utt2spk
    if not path.is_file() or not train.files.utt2spk.is_file():
        logger.warning("cannot check speaker overlap (%s or %s missing)", path,
                       train.files.utt2spk)
        return
    u2s = read_kv(path)
    spks = {u2s[u] for e, t, _ in trials for u in (e, t) if u in u2s}
    overlap = sorted(spks & set(train.utt2spk.values()))
    if overlap:
        raise ScoringError(f"{trials_path}: {len(overlap)} trial speakers are training speakers "
                           f"of {train.dir} (e.g. {overlap[:3]}); the backend must not see them")


def score_all(exp_dir: Path, trials_files: List[Path], backends: List[str], train_set: str,
              eval_set: Optional[str], out_dir: Optional[Path], top_n: int,
              lda_dim: Optional[int], plda_iters: int) -> List[Path]:
    bad = [b for b in backends if b not in BACKENDS]
    if bad:
        raise ScoringError(f"unknown backend(s) {bad}; valid: {', '.join(BACKENDS)}")
    layout = ExpLayout(exp_dir)
    out_dir = out_dir or layout.scores
    # Load and check every list first, so a bad key fails before any work is done.
    jobs = []
    loaded: Dict[Path, tuple] = {}  # several lists of one set read its embeddings once
    for tp in trials_files:
        trials = read_trials(tp)
        edir = layout.embeddings(eval_set or eval_set_of(tp))
        scp = edir.xvector_scp
        if not scp.is_file():
            raise ScoringError(f"{scp}: no embeddings for the trial set of {tp} "
                               "(run stage 4, or pass --eval-set)")
        if scp not in loaded:
            loaded[scp] = read_vectors(scp)
        keys, emb = loaded[scp]
        jobs.append((tp, trials, edir, emb, trial_indices(trials, keys, scp, tp)))
    train = TrainSide(layout.embeddings(train_set), top_n, lda_dim, plda_iters)
    written = []
    for tp, trials, edir, emb, (enroll, test, labels) in jobs:
        check_speaker_overlap(edir, trials, train, tp)
        for backend in backends:
            if backend == "cosine":
                scores = cosine_scores(emb, enroll, test, train.mean)
            elif backend == "asnorm":
                scores = asnorm_scores(emb, enroll, test, train.mean, train.cohort(), top_n)
            else:
                scores = train.plda().score(emb, enroll, test)
            score_file, result_file = score_files(out_dir, tp.stem, backend)
            write_scores(score_file, trials, scores)
            m = compute_metrics(scores, labels)
            write_result(result_file, {
                "scores": str(score_file), "trials": str(tp),
                "trials_name": tp.stem, "backend": backend, **format_metrics(m),
                "backend_info": train.describe(backend)})
            logger.info("%s %s: EER %.3f%%, minDCF(0.01) %.4f, minDCF(0.001) %.4f", tp.stem,
                        backend, m["eer"], m["min_dcf_0.01"], m["min_dcf_0.001"])
            written.append(result_file)
    return written
