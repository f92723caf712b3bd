"""Sets up a training run's KD: loads and checks the teacher, builds the Distiller and the monitor."""

from __future__ import annotations

from bccmt.features import FbankConfig
from bccmt.kd.config import KDSection
from bccmt.kd.diagnostics import MapMonitor, fixed_crops
from bccmt.kd.teacher import Distiller, TeacherCheckError, default_pairs, load_teacher
from bccmt.train import distributed as dist_util


def make_distiller(kd: KDSection, teacher_exp, student, dataset, features: FbankConfig, info):
    """Loads and checks the teacher of a training run -> (Distiller, or None unless kd.enabled;
    MapMonitor on the main rank, or None unless kd.monitor_utts > 0). ``features``: the training
    data's fbank config, which the teacher's must equal. ``info``: the run's
    bccmt.train.distributed info; a failed check on rank 0 stops every rank."""
    teacher, final = load_teacher(teacher_exp, features, info.device, kd.teacher_checkpoint)
    distiller = Distiller(teacher, default_pairs(student, teacher, kd.layers), kd)
    error, monitor = None, None
    if info.is_main:
        try:
            distiller.check_maps(student, dataset.crop_frames, dataset.feat_dim, info.device)
            if kd.enabled:
                distiller.check_accuracy(final, dataset, info.device)
        except TeacherCheckError as e:
            error = e
    if dist_util.broadcast_flag(error is not None, info):
        raise error or TeacherCheckError("teacher check failed on rank 0")
    if info.is_main and kd.monitor_utts > 0:
        monitor = MapMonitor(teacher, distiller.pairs, default_pairs(student, teacher, None),
                             kd.head_mode, fixed_crops(dataset, kd.monitor_utts), info.device)
    return (distiller if kd.enabled else None), monitor
