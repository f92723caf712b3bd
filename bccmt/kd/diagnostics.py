"""KD diagnostics: teacher map entropy, and the student-teacher map KL measured during training.

Both run on one fixed set of clean training crops, the same for every seed, arm and teacher:
utterances and crop offsets are drawn from their own generator (``CROP_SEED``) among the
utterances that are not stage-1 augmented copies (a copy is ``<utt>-<type>`` with ``<utt>`` in the
same data dir, see bccmt.augment.job), without SpecAugment. Nothing here
touches the global RNGs, gradients, or a model's training mode beyond restoring it, so measuring a
student changes neither its weights nor what it trains on next (a run with ``kd.weight = 0`` and
the monitor on trains the same weights as the plain student; tests/test_kd_study.py checks it).

- Entropy: for each map (B, heads, Tq, Tk), the mean over batch, heads and query rows of
  H(row) / log(Tk), H = -sum_k p_k log p_k. 1 means uniform rows (no information to distil),
  0 means one-hot rows.
- Map KL: KL(teacher || student) per head and query row, exactly the KD loss's ``kl``
  (bccmt.kd.attention_loss), with the student in eval mode, per layer pair and averaged.
"""

from __future__ import annotations

import logging
import math
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch

from bccmt.kd.attention_loss import map_divergence, match_heads

log = logging.getLogger(__name__)
CROP_SEED = 20240917  # fixed: every student and teacher is measured on the same crops
BATCH = 32
ALL_MAPS = 1 << 30  # ``upto`` that asks model_maps for every map


def clean_indices(utts: Sequence[str]) -> List[int]:
    """Indices of the utterances that are not augmented copies of another one in ``utts``."""
    present = set(utts)
    return [i for i, u in enumerate(utts) if "-" not in u or u.rsplit("-", 1)[0] not in present]


def fixed_crops(dataset, num: int) -> torch.Tensor:
    """(N, crop_frames, F) float32: N = min(num, clean utterances) fixed crops (see module doc)."""
    rng = np.random.default_rng(CROP_SEED)
    clean = clean_indices(dataset.utts)
    chosen = np.sort(rng.choice(clean, size=min(num, len(clean)), replace=False))
    return torch.stack([torch.from_numpy(dataset.load_crop(int(i), rng, augment=False))
                        for i in chosen])


@torch.no_grad()
def model_maps(model, crops: torch.Tensor, device, upto: int) -> List[torch.Tensor]:
    """The softmax maps 0..upto of ``model`` (eval mode) on crops, batched, on the CPU."""
    was_training = model.training
    model.eval()
    out: List[List[torch.Tensor]] = []
    try:
        for start in range(0, crops.shape[0], BATCH):
            x = crops[start:start + BATCH].to(device)
            if hasattr(model, "attention_maps"):
                maps = model.attention_maps(x, upto)
            else:
                maps = model(x, return_attention=True)[1][:upto + 1]
            out.append([m.float().cpu() for m in maps])
    finally:
        model.train(was_training)
    return [torch.cat(layer) for layer in zip(*out)]


def map_entropy(m: torch.Tensor) -> float:
    """Mean H(row) / log(Tk) of softmax maps m (B, heads, Tq, Tk); NaN when Tk = 1."""
    tk = m.shape[-1]
    if tk < 2:
        return float("nan")
    h = -torch.special.xlogy(m.double(), m.double()).sum(-1)
    return float(h.mean() / math.log(tk))


def teacher_entropy(teacher, crops: torch.Tensor, device) -> List[Dict[str, float]]:
    """[{map, heads, tq, tk, entropy_rel}] for every attention map of the teacher, network order."""
    maps = model_maps(teacher, crops, device, ALL_MAPS)
    return [{"map": i, "heads": m.shape[1], "tq": m.shape[2], "tk": m.shape[3],
             "entropy_rel": map_entropy(m)} for i, m in enumerate(maps)]


class MapMonitor:
    """Student-teacher map KL on fixed crops, measured after every epoch (history keys below).

    ``pairs``: the distilled (student, teacher) map pairs (``map_kl`` is their mean);
    ``reference``: the default pairs, last block of each stage (``map_kl_default``), so that arms
    distilling other layers and plain students are compared on the same layers. Every pair of
    both sets also gets ``map_kl_<s>_<t>``. The teacher maps are computed once.
    """

    def __init__(self, teacher, pairs: Sequence[Tuple[int, int]],
                 reference: Sequence[Tuple[int, int]], head_mode: str, crops: torch.Tensor, device):
        self.pairs, self.reference = list(pairs), list(reference)
        self.all_pairs = sorted(set(self.pairs) | set(self.reference))
        self.head_mode, self.crops, self.device = head_mode, crops, device
        t_maps = model_maps(teacher, crops, device, max(t for _, t in self.all_pairs))
        self.teacher_maps = {t: t_maps[t] for _, t in self.all_pairs}
        log.info("map KL monitor: %d fixed crops, pairs %s (reference %s)", crops.shape[0],
                 self.pairs, self.reference)

    def measure(self, student) -> Dict[str, float]:
        """{'map_kl', 'map_kl_default', 'map_kl_<s>_<t>' ...} for the student as it is now."""
        s_maps = model_maps(student, self.crops, self.device, max(s for s, _ in self.all_pairs))
        per = {}
        for si, ti in self.all_pairs:
            s, t = match_heads(s_maps[si], self.teacher_maps[ti], self.head_mode)
            per[(si, ti)] = float(map_divergence(s, t, "kl"))
        out = {"map_kl": float(np.mean([per[p] for p in self.pairs])),
               "map_kl_default": float(np.mean([per[p] for p in self.reference]))}
        out.update({f"map_kl_{s}_{t}": v for (s, t), v in per.items()})
        return out
