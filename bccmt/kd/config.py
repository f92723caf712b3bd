"""The ``kd:`` section of a training config and its validation (bccmt.config parses sections and
calls ``KDSection.problems``; this module imports nothing of the training config)."""

from __future__ import annotations

import dataclasses
from typing import List, Optional


@dataclasses.dataclass
class KDSection:
    enabled: bool = False  # distil a teacher's attention maps (needs --teacher-exp)
    weight: float = 10.0  # lambda in L = L_AAM + lambda * L_attn (conf/bccmt_tiny_kd.yaml's value)
    loss: str = "kl"  # kl (KL(teacher || student) per query row) | mse (on probabilities)
    layers: Optional[List[List[int]]] = None  # [[student_map, teacher_map], ...]; null = kd_layers
    head_mode: str = "average"  # unequal head counts: average (all heads) | map (group teacher heads)
    embedding_weight: float = 0.0  # weight of the embedding-level (similarity-matrix MSE) KD term
    check_utts: int = 200  # training crops the teacher is checked on before distillation
    check_p_value: Optional[float] = 0.01  # stop unless the teacher beats chance at this level (null: log)
    teacher_checkpoint: Optional[str] = None  # <teacher-exp>/models/<this>; null = final.pt
    monitor_utts: int = 0  # crops for the per-epoch student-teacher map KL (0 = off)

    CHOICES = {"loss": ("kl", "mse"), "head_mode": ("average", "map")}

    def problems(self) -> List[str]:
        """What is wrong with the values (messages naming the kd.* key), [] if nothing."""
        out = []
        if self.weight < 0 or self.embedding_weight < 0:
            out.append("kd weights must be >= 0")
        if self.check_utts < 1:
            out.append("kd.check_utts must be >= 1")
        if self.monitor_utts < 0:
            out.append("kd.monitor_utts must be >= 0")
        for pair in self.layers or []:
            if not (isinstance(pair, list) and len(pair) == 2
                    and all(isinstance(i, int) for i in pair)):
                out.append(f"kd.layers must be [[student, teacher], ...], got {pair!r}")
        return out
