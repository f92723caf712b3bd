"""Scoring backends as pure numpy functions: cosine, AS-norm, LDA, two-covariance PLDA.

Every backend takes embeddings as (N, D) arrays and trials as index arrays into them; nothing here
reads files. Training-side statistics (mean, cohort, LDA, PLDA) come from the training set only, so
evaluation speakers never influence them.
"""

from bccmt.backend.asnorm import asnorm_scores, cohort_stats, speaker_means
from bccmt.backend.cosine import cosine_scores, length_norm, prepare_cosine
from bccmt.backend.lda import train_lda
from bccmt.backend.plda import Plda, train_plda

__all__ = [
    "Plda",
    "asnorm_scores",
    "cohort_stats",
    "cosine_scores",
    "length_norm",
    "prepare_cosine",
    "speaker_means",
    "train_lda",
    "train_plda",
]
