"""Builds the whole mini corpus under an output root (see bccmt.corpus.layout for the layout).

Work is split into fixed units (one per speaker, per MUSAN file, per RIR room size); each unit runs
in its own freshly forked process (``maxtasksperchild=1``) and derives all randomness from
(seed, ids), so the bytes written do not depend on ``nj`` or on scheduling.

Rerun policy (marker files in the root):
  ``.mini_corpus.json``  written first: the resolved config and its digest;
  ``.done``              written last: the digest and the corpus statistics.
  Same config and ``.done`` present -> nothing to do. Same config, no ``.done`` (interrupted) ->
  everything is regenerated in place (identical bytes; temp files are removed). A different
  config, or corpus folders without our marker -> CorpusExistsError: remove the root or pick
  another one (we never mix two configs in one tree).
"""

from __future__ import annotations

import glob
import json
import logging
import multiprocessing as mp
import os
import time
from typing import Any, Callable, Dict, List, Tuple

from bccmt.corpus import extras
from bccmt.corpus.config import CorpusConfig
from bccmt.corpus.layout import (TRIALS, TRIALS_E, TRIALS_H, SpeakerPlan, make_plan,
                                  make_trial_lists)
from bccmt.corpus.utterances import render_speaker

log = logging.getLogger(__name__)
MARKER = ".mini_corpus.json"
DONE = ".done"
CORPUS_DIRS = ("voxceleb1", "voxceleb2", "musan", "rirs_noises")


class CorpusExistsError(RuntimeError):
    """The output root holds a corpus made with another config (or unknown content)."""


def _run_unit(unit: Tuple[Callable, Any]) -> List[Tuple[str, float]]:
    func, args = unit
    return func(args)


def _kind(rel: str) -> str:
    """Statistics bucket of a written file: voxceleb1, voxceleb2, musan/<type>, rirs_noises."""
    parts = rel.split("/")
    return "/".join(parts[:2]) if parts[0] == "musan" else parts[0]


def _write_json(path: str, obj: Dict[str, Any]) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def _check_root(root: str, digest: str) -> bool:
    """-> True when the corpus is already complete for ``digest``; raises on a foreign tree."""
    marker, done = os.path.join(root, MARKER), os.path.join(root, DONE)
    if os.path.exists(marker):
        with open(marker, encoding="utf-8") as f:
            old = json.load(f).get("digest")
        if old != digest:
            raise CorpusExistsError(
                f"{root} holds a mini corpus made with another config (digest {old}, now "
                f"{digest}); remove it or choose another output root")
        if os.path.exists(done):
            return True
        log.warning("%s: unfinished corpus with this config; regenerating it", root)
        for tmp in glob.glob(os.path.join(root, "**", "*.tmp*"), recursive=True):
            os.remove(tmp)
        return False
    present = [d for d in CORPUS_DIRS if os.path.exists(os.path.join(root, d))]
    if present or os.path.exists(done):
        raise CorpusExistsError(f"{root} has {present or [DONE]} but no {MARKER}: not made by "
                                f"this maker; remove it or choose another output root")
    return False


def write_trials(path: str, trials: List[Tuple[int, str, str]]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        for label, a, b in trials:
            f.write(f"{label} {a} {b}\n")
    os.replace(tmp, path)


def _write_trial_lists(cfg: CorpusConfig, test: List[SpeakerPlan],
                       root: str) -> Dict[str, Tuple[int, int]]:
    """Writes every trial list of ``cfg`` -> {relative path: (trials, target trials)}."""
    counts = {}
    for rel, trials in make_trial_lists(cfg, test).items():
        write_trials(os.path.join(root, rel), trials)
        counts[rel] = (len(trials), sum(t[0] for t in trials))
    return counts


def make_corpus(cfg: CorpusConfig, root: str, nj: int = 1) -> Dict[str, Any]:
    """Generates the corpus under ``root`` with ``nj`` processes -> statistics dict."""
    digest = cfg.digest()
    os.makedirs(root, exist_ok=True)
    if _check_root(root, digest):
        with open(os.path.join(root, DONE), encoding="utf-8") as f:
            stats = json.load(f)
        log.info("%s: complete for config %s; nothing to do", root, digest)
        return stats
    _write_json(os.path.join(root, MARKER), {"digest": digest, "config": cfg.identity()})
    start = time.time()
    plan = make_plan(cfg)
    # the trial lists depend on the plan only: written first, so that a list the test set cannot
    # fill fails before hours of synthesis (the .done marker still comes last)
    trial_counts = _write_trial_lists(cfg, plan.test, root)
    units: List[Tuple[Callable, Any]] = [(render_speaker, (cfg, p, root))
                                         for p in plan.train + plan.test]
    units += [(extras.render_speech, (cfg, root, i + 1, s))
              for i, s in enumerate(plan.extra_speakers)]
    units += [(extras.render_noise, (cfg, root, i)) for i in range(1, cfg.extras.noise_files + 1)]
    units += [(extras.render_music, (cfg, root, i)) for i in range(1, cfg.extras.music_files + 1)]
    units += [(extras.render_rirs, (cfg, root, size)) for size in extras.ROOM_RT60]
    log.info("generating %d train + %d test speakers, %d extra speech speakers, %d units, nj=%d "
             "-> %s", len(plan.train), len(plan.test), len(plan.extra_speakers), len(units), nj,
             root)
    seconds: Dict[str, float] = {}
    counts: Dict[str, int] = {}
    step = max(1, len(units) // 10)
    # fork: children start without an eSpeak engine (the parent never creates one); one task per
    # child keeps every unit's synthesis independent of what ran before it.
    with mp.get_context("fork").Pool(max(1, nj), maxtasksperchild=1) as pool:
        for k, files in enumerate(pool.imap_unordered(_run_unit, units, chunksize=1), 1):
            for rel, dur in files:
                kind = _kind(rel)
                seconds[kind] = seconds.get(kind, 0.0) + dur
                counts[kind] = counts.get(kind, 0) + 1
            if k % step == 0 or k == len(units):
                log.info("%d/%d units done (%.1f s)", k, len(units), time.time() - start)
    stats = {
        "digest": digest,
        "train_speakers": len(plan.train),
        "test_speakers": len(plan.test),
        "train_utts": counts.get("voxceleb2", 0),
        "test_utts": counts.get("voxceleb1", 0),
        "train_hours": round(seconds.get("voxceleb2", 0.0) / 3600, 4),
        "test_hours": round(seconds.get("voxceleb1", 0.0) / 3600, 4),
        "trials": trial_counts[TRIALS][0],
        "target_trials": trial_counts[TRIALS][1],
        "files": counts,
        "generation_seconds": round(time.time() - start, 1),
        "nj": nj,
    }
    for rel, suffix in ((TRIALS_E, "_e"), (TRIALS_H, "_h")):  # only when the config asks for them
        if rel in trial_counts:
            stats[f"trials{suffix}"], stats[f"target_trials{suffix}"] = trial_counts[rel]
    _write_json(os.path.join(root, DONE), stats)
    log.info("done: %s", json.dumps(stats, sort_keys=True))
    return stats
