"""A paired-seed KD study directory: its settings and arms, and collecting its finished runs.

Layout (made by local/kd_study.sh):
  <study-dir>/study.yaml            settings (teacher, the two configs and the sha256 of each resolved, data dirs,
                                    trial lists, backends, common overrides, monitor crops) and
                                    ``arms``: {name: [key=value overrides of the KD config]}
  <study-dir>/runs/<arm>/seed<N>/   one exp dir per student (config.yaml, train.log, models/,
                                    embeddings/, scores/*.{score,result}); ``study.done`` last
  <study-dir>/diagnostics/teacher_entropy.<checkpoint>.json
  <study-dir>/results.json, RESULTS.md (bccmt.studies.kd_study_report)
Arm ``plain`` is the student without KD (the plain config, with the teacher only for the map-KL
monitor). Every other arm is the KD config plus its overrides; overrides may set ``kd.*`` keys only
(except kd.enabled and kd.monitor_utts, which the study sets), so a pair differs in KD alone.
Settings are fixed when a study dir is made: a rerun with other settings, or an arm redefined
under the same name, is an error, while new seeds and new arms are added to the same study.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path
from typing import Any, Dict, List

import yaml

from bccmt.io import atomic_write

log = logging.getLogger(__name__)
PLAIN = "plain"
MAIN_ARM = "kd"
METRICS = ("eer", "min_dcf_0.01", "min_dcf_0.001")
ARM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
STUDY_KEYS = ("kd.enabled", "kd.monitor_utts", "train.seed")  # set by the study alone
SETTINGS = ("teacher_exp", "kd_config", "plain_config", "kd_config_sha256", "plain_config_sha256",
            "train_data", "backend_data", "eval_data", "trials", "backends", "train_opts",
            "monitor_utts")


class StudyError(ValueError):
    """A study dir, arms file or run that cannot be used; the message names the file."""


def read_arms_file(path) -> Dict[str, List[str]]:
    """{name: overrides} from lines ``name [key=value ...]`` (``#`` comments, blank lines)."""
    arms: Dict[str, List[str]] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise StudyError(f"{path}: no such arms file") from None
    for lineno, line in enumerate(lines, 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        name, overrides = fields[0], fields[1:]
        if name in arms:
            raise StudyError(f"{path}:{lineno}: arm '{name}' defined twice")
        check_arm(name, overrides, f"{path}:{lineno}")
        arms[name] = overrides
    if not arms:
        raise StudyError(f"{path}: no arms defined")
    return arms


def check_arm(name: str, overrides: List[str], source: str) -> None:
    if not ARM_NAME.match(name) or name == PLAIN:
        raise StudyError(f"{source}: bad arm name '{name}' (letters, digits, _.+-; '{PLAIN}' is "
                         "the student without KD)")
    for o in overrides:
        key = o.split("=", 1)[0]
        if "=" not in o or not key.startswith("kd.") or key in STUDY_KEYS:
            raise StudyError(f"{source}: arm '{name}': override '{o}' must be kd.<key>=<value> "
                             f"(not {', '.join(STUDY_KEYS)}): a pair may differ in KD alone")


def sha256(path) -> str:
    """sha256 of a training config as resolved (its base files merged, defaults filled in, keys
    sorted): edits anywhere in its base chain change it, reformatting does not."""
    from bccmt.config import ConfigError, load_config

    try:
        resolved = load_config(path).to_dict()
    except ConfigError as e:
        raise StudyError(str(e)) from None
    text = yaml.safe_dump(resolved, sort_keys=True, default_flow_style=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def arm_overrides(study: Dict[str, Any], arm: str) -> List[str]:
    """Every --set override of one arm's students (the seed is added per run)."""
    mon = [f"kd.monitor_utts={study['monitor_utts']}"]
    if arm == PLAIN:
        return list(study["train_opts"]) + mon
    return list(study["train_opts"]) + list(study["arms"][arm]) + mon


def setup_study(study_dir, settings: Dict[str, Any], arms: Dict[str, List[str]]) -> Dict[str, Any]:
    """Checks the settings and arms against ``study.yaml`` (made here the first time), validates
    every arm's config, records new arms; returns the study (settings + all arms)."""
    study_dir = Path(study_dir)
    path = study_dir / "study.yaml"
    settings = {k: settings[k] for k in SETTINGS}
    bad = [o for o in settings["train_opts"] if o.split("=", 1)[0] in STUDY_KEYS]
    if bad:
        raise StudyError(f"common training overrides {bad}: {', '.join(STUDY_KEYS)} are set by "
                         "the study")
    study = {**settings, "arms": {}}
    if path.is_file():
        study = read_study(study_dir)
        changed = [f"{k}: {study.get(k)!r} -> {settings[k]!r}" for k in SETTINGS
                   if study.get(k) != settings[k]]
        if changed:
            raise StudyError(f"{path}: this study was made with other settings "
                             f"({'; '.join(changed)}); use a new study dir")
    for name, overrides in arms.items():
        check_arm(name, overrides, str(path))
        old = study["arms"].get(name)
        if old is not None and old != overrides:
            raise StudyError(f"{path}: arm '{name}' is recorded as {old}, now {overrides}: give "
                             "the new definition another name")
        study["arms"][name] = list(overrides)
    for arm in [PLAIN, *study["arms"]]:
        _check_arm_config(study, arm)
    with atomic_write(path, encoding="utf-8") as f:
        yaml.safe_dump(study, f, sort_keys=False, default_flow_style=None)
    return study


def _check_arm_config(study: Dict[str, Any], arm: str) -> None:
    """The arm's resolved config is valid, KD on exactly for KD arms, its teacher file exists."""
    from bccmt.exp import load_final
    from bccmt.config import ConfigError, load_config

    cfg = study["plain_config" if arm == PLAIN else "kd_config"]
    try:
        c = load_config(cfg, arm_overrides(study, arm))
    except ConfigError as e:
        raise StudyError(f"arm '{arm}': {e}") from None
    if c.kd.enabled != (arm != PLAIN):
        raise StudyError(f"{cfg}: kd.enabled is {c.kd.enabled}, arm '{arm}' needs "
                         f"{arm != PLAIN} (--kd-config / --plain-config swapped?)")
    load_final(study["teacher_exp"], c.kd.teacher_checkpoint)  # CheckpointError names the file


def read_study(study_dir) -> Dict[str, Any]:
    path = Path(study_dir) / "study.yaml"
    try:
        study = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StudyError(f"{path}: no such file (not a study dir; local/kd_study.sh makes it)") \
            from None
    if not isinstance(study, dict) or any(k not in study for k in (*SETTINGS, "arms")):
        raise StudyError(f"{path}: not a KD study file (keys {', '.join(SETTINGS)}, arms)")
    return study


def run_dir(study_dir, arm: str, seed: int) -> Path:
    return Path(study_dir) / "runs" / arm / f"seed{seed}"


def finished_runs(study_dir, study: Dict[str, Any]) -> Dict[str, Dict[int, Path]]:
    """{arm: {seed: run dir}} of the runs with a study.done marker (plain first)."""
    out: Dict[str, Dict[int, Path]] = {}
    for arm in [PLAIN, *study["arms"]]:
        runs = {}
        for done in sorted((Path(study_dir) / "runs" / arm).glob("seed*/study.done")):
            m = re.fullmatch(r"seed(-?\d+)", done.parent.name)
            if m:
                runs[int(m.group(1))] = done.parent
        out[arm] = dict(sorted(runs.items()))
    return out


def read_done(run: Path) -> Dict[str, Any]:
    """The study.done marker: arm, seed, overrides and wall seconds of the run's steps."""
    d = yaml.safe_load((run / "study.done").read_text(encoding="utf-8"))
    if not isinstance(d, dict):
        raise StudyError(f"{run / 'study.done'}: not a study.done marker")
    return d
