"""The ``kd:`` section of a training config (see bccmt.config for how sections are parsed)."""

from __future__ import annotations

import dataclasses
from typing import List, Optional


@dataclasses.dataclass
class KDSection:
    enabled: bool = False  # distil a teacher's attention maps (needs --teacher-exp)
    weight: float = 1.0  # lambda in L = L_AAM + lambda * L_attn
    loss: str = "kl"  # kl (KL(teacher || student) per query row) | mse (on probabilities)
    layers: Optional[List[List[int]]] = None  # [[student_map, teacher_map], ...]; null = kd_layers
    head_mode: str = "average"  # unequal head counts: average (all heads) | map (group teacher heads)
    embedding_weight: float = 0.0  # weight of the embedding-level (similarity-matrix MSE) KD term
    check_utts: int = 200  # training crops the teacher is checked on before distillation
    check_p_value: Optional[float] = 0.01  # stop unless the teacher beats chance at this level (null: log)
    teacher_checkpoint: Optional[str] = None  # <teacher-exp>/models/<this>; null = final.pt
    monitor_utts: int = 0  # crops for the per-epoch student-teacher map KL (0 = off)
