"""The KD teacher: strict load from its exp dir, freezing, a sanity check, and the loss terms.

Loss (see bccmt.kd.attention_loss), computed in one place, ``Distiller.loss``:
    L = L_AAM(student) + kd.weight * L_attn + kd.embedding_weight * L_emb
It returns L and its named terms (``TERMS``: aam, attn, emb, kd_share = the weighted KD terms'
share of L), the names the training log and the epoch history use. L_attn compares the
student's and the frozen teacher's softmax attention maps, computed on the very same crop, at
the mapped layers (default: the last block of each stage, ``model.kd_layers`` of
both models, paired in order). The teacher runs in eval mode under no_grad; its parameters have
requires_grad False, so no gradient reaches it and the optimiser never sees it.

Check before distilling: the teacher's own classifier head (saved in its final.pt) classifies
``kd.check_utts`` clean training crops of speakers it knows; the accuracy is logged and training
stops with TeacherCheckError unless a one-sided binomial test rejects "chance level" (1 / number of
teacher speakers) at level ``kd.check_p_value`` (null: log only).
"""

from __future__ import annotations

import logging
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from bccmt.features import FbankConfig
from bccmt.kd.attention_loss import attention_kd_loss, embedding_kd_loss
from bccmt.kd.config import KDSection

log = logging.getLogger(__name__)


class TeacherCheckError(RuntimeError):
    """The teacher is unusable (mismatched features/maps, or no better than chance)."""


def freeze(model: torch.nn.Module) -> torch.nn.Module:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def load_teacher(exp_dir, features: FbankConfig, device,
                 checkpoint: Optional[str] = None) -> Tuple[torch.nn.Module, Dict]:
    """(frozen teacher, its final.pt dict); its feature config (<exp_dir>/config.yaml) must equal
    ``features``, the student's training data's fbank config.
    ``checkpoint``: a file in <exp_dir>/models other than final.pt, e.g. epoch_10.pt."""
    from bccmt.exp import load_embedding_model, load_final

    model, cfg = load_embedding_model(exp_dir, device=device, checkpoint=checkpoint)
    # all settings, dither too: the teacher sees the student's very crops, so it must have been
    # trained on features made the same way
    diff = cfg.features.differences(features, names=("teacher", "student"))
    if diff:
        raise TeacherCheckError(f"{cfg.path}: teacher features differ from the training data's "
                                f"fbank.yaml: {', '.join(diff)}")
    log.info("teacher %s (%s) loaded strictly from %s/models/%s", cfg.model_name,
             type(model).__name__, exp_dir, checkpoint or "final.pt")
    return freeze(model), load_final(exp_dir, checkpoint)


def default_pairs(student, teacher, layers: Optional[List[List[int]]]) -> List[Tuple[int, int]]:
    if layers is not None:
        return [(int(s), int(t)) for s, t in layers]
    s, t = list(student.kd_layers), list(teacher.kd_layers)
    if len(s) != len(t):
        raise TeacherCheckError(f"student kd_layers {s} and teacher kd_layers {t} differ in length;"
                                " set kd.layers: [[student, teacher], ...]")
    return list(zip(s, t))


def every_block_pairs(student_blocks: Sequence[int],
                      teacher_blocks: Sequence[int]) -> List[Tuple[int, int]]:
    """Every student attention block paired with the teacher block at the same relative depth of
    the same stage: student block j of n (1-based) -> teacher block ceil(j * m / n) of m, so each
    stage's last block maps to the teacher's last (the default pairs are a subset) and no teacher
    block is used twice when m >= n. Map indices in network order. Tiny (2, 2, 4, 2) -> Base
    (2, 2, 6, 2): [(0,0), (1,1), (2,2), (3,3), (4,5), (5,6), (6,8), (7,9), (8,10), (9,11)]."""
    if len(student_blocks) != len(teacher_blocks):
        raise ValueError(f"stage counts differ: {list(student_blocks)} vs {list(teacher_blocks)}")
    pairs, s0, t0 = [], 0, 0
    for n, m in zip(student_blocks, teacher_blocks):
        pairs += [(s0 + j - 1, t0 + -(-j * m // n) - 1) for j in range(1, n + 1)]
        s0, t0 = s0 + n, t0 + m
    return pairs


@torch.no_grad()
def teacher_accuracy(teacher, final: Dict, dataset, num_utts: int, device) -> Tuple[float, float, int]:
    """(accuracy, chance, crops used) of the teacher's head on fixed clean crops of the data."""
    from bccmt.models import build_head

    if "head_state_dict" not in final:
        raise TeacherCheckError("teacher final.pt has no head_state_dict: cannot check it")
    head = build_head(final["head_name"], **final["head_args"])
    head.load_state_dict(final["head_state_dict"], strict=True)
    head = freeze(head).to(device)
    head.margin = 0.0
    t_spk2idx = final["spk2idx"]
    idx2spk = {i: s for s, i in dataset.spk2idx.items()}
    known = [i for i in range(len(dataset)) if idx2spk[int(dataset.labels[i])] in t_spk2idx]
    if not known:
        raise TeacherCheckError("no training speaker is known to the teacher: cannot check it")
    rng = np.random.default_rng([dataset.seed, 999_999])
    chosen = rng.choice(known, size=min(num_utts, len(known)), replace=False)
    correct = 0
    for start in range(0, len(chosen), 32):
        batch = chosen[start:start + 32]
        feats = torch.stack([torch.from_numpy(dataset.load_crop(int(i), rng, augment=False))
                             for i in batch]).to(device)
        labels = torch.tensor([t_spk2idx[idx2spk[int(dataset.labels[i])]] for i in batch],
                              device=device)
        logits = head(teacher(feats), labels)
        correct += int((logits.argmax(-1) == labels).sum())
    return correct / len(chosen), 1.0 / len(t_spk2idx), len(chosen)


def chance_p_value(correct: int, n: int, chance: float) -> float:
    """P(X >= correct) for X ~ Binomial(n, chance): how likely a chance-level teacher does as well."""
    from scipy.stats import binom

    return float(binom.sf(correct - 1, n, chance))


TERMS = ("aam", "attn", "emb", "kd_share")  # named terms of Distiller.loss, in log order


class Distiller:
    """Holds the frozen teacher and computes the training loss with its KD terms."""

    def __init__(self, teacher, pairs, cfg: KDSection):
        self.teacher, self.pairs, self.cfg = teacher, pairs, cfg

    def check_maps(self, student, frames: int, feat_dim: int, device) -> None:
        """Every pair indexes an existing map and the paired maps are comparable."""
        x = torch.zeros(2, frames, feat_dim, device=device)
        was_training = student.training
        student.eval()
        with torch.no_grad():
            _, s_maps = student(x, return_attention=True)
            _, t_maps = self.teacher(x, return_attention=True)
        student.train(was_training)
        for si, ti in self.pairs:
            if not (0 <= si < len(s_maps) and 0 <= ti < len(t_maps)):
                raise TeacherCheckError(f"kd layer pair ({si}, {ti}) out of range: student has "
                                        f"{len(s_maps)} maps, teacher {len(t_maps)}")
        try:
            attention_kd_loss(s_maps, t_maps, self.pairs, self.cfg.loss, self.cfg.head_mode)
        except ValueError as e:
            raise TeacherCheckError(str(e)) from e
        log.info("KD layer pairs (student, teacher): %s; shapes %s", self.pairs,
                 [(tuple(s_maps[s].shape[1:]), tuple(t_maps[t].shape[1:])) for s, t in self.pairs])

    def check_accuracy(self, final, dataset, device) -> float:
        """The teacher's accuracy on clean training crops, tested against chance level."""
        acc, chance, n = teacher_accuracy(self.teacher, final, dataset, self.cfg.check_utts, device)
        p_value = chance_p_value(round(acc * n), n, chance)
        log.info("teacher check: accuracy %.3f on %d clean training crops (chance %.4f, "
                 "p-value of chance level %.2g)", acc, n, chance, p_value)
        if self.cfg.check_p_value is not None and not p_value < self.cfg.check_p_value:
            raise TeacherCheckError(
                f"teacher accuracy {acc:.3f} on {n} crops is not significantly above chance "
                f"{chance:.4f} (p = {p_value:.2g} >= kd.check_p_value {self.cfg.check_p_value}): "
                "train the teacher longer or check --teacher-exp")
        return acc

    def term_names(self) -> List[str]:
        """The names ``loss`` returns, in order (emb only when kd.embedding_weight > 0)."""
        return [n for n in TERMS if n != "emb" or self.cfg.embedding_weight > 0]

    def loss(self, aam, feats, s_emb, s_maps) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """(L, {name: term}) for a student batch: aam is its AAM loss, s_emb (B, E) and s_maps its
        embeddings and maps on ``feats`` (B, T, F), the crops the teacher sees too."""
        with torch.no_grad():
            if self.cfg.embedding_weight > 0 or not hasattr(self.teacher, "attention_maps"):
                t_emb, t_maps = self.teacher(feats, return_attention=True)
            else:  # only the maps are needed: skip the blocks after the last pair and the pooling
                t_emb = None
                t_maps = self.teacher.attention_maps(feats, max(t for _, t in self.pairs))
        attn, _ = attention_kd_loss(s_maps, t_maps, self.pairs, self.cfg.loss, self.cfg.head_mode)
        terms = {"aam": aam, "attn": attn}
        kd = self.cfg.weight * attn
        if self.cfg.embedding_weight > 0:
            terms["emb"] = embedding_kd_loss(s_emb, t_emb)
            kd = kd + self.cfg.embedding_weight * terms["emb"]
        total = aam + kd
        terms["kd_share"] = (kd / total).detach()
        return total, terms
