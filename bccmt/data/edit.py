"""Kaldi data dirs, changed as a whole: fix (keep what every table has), subset, combine.

Each writes complete sorted tables and rebuilds spk2utt (see bccmt.data.datadir for the contract).
"""

from __future__ import annotations

import logging
import random
import shutil
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

from bccmt.data.datadir import (CONFIG_FILES, SPK_TABLES, UTT_TABLES, DataDirError, c_order,
                                examples, filter_scp, utt2spk_to_spk2utt, validate)
from bccmt.io.tables import read_kv, write_kv, write_lists

log = logging.getLogger(__name__)


def _tables(d: Path, names: Sequence[str]) -> Dict[str, Dict[str, str]]:
    return {n: read_kv(d / n) for n in names if (d / n).is_file()}


def _write_dir(dst: Path, utt_tables: Dict[str, Dict[str, str]], keep: Iterable[str],
               spk_tables: Dict[str, Dict[str, str]]) -> Dict[str, str]:
    keep = set(keep)
    dst.mkdir(parents=True, exist_ok=True)
    for name, table in utt_tables.items():
        write_kv(dst / name, filter_scp(keep, table))
    utt2spk = filter_scp(keep, utt_tables["utt2spk"])
    write_lists(dst / "spk2utt", utt2spk_to_spk2utt(utt2spk))
    for name, table in spk_tables.items():
        write_kv(dst / name, filter_scp(set(utt2spk.values()), table))
    return utt2spk


def fix(data_dir) -> Dict[str, int]:
    """Keeps the utterances present in every per-utterance table, sorts, rebuilds spk2utt.

    The original tables are copied to ``<data_dir>/.backup/`` first. Returns {"kept", "dropped"}.
    """
    d = Path(data_dir)
    if not (d / "utt2spk").is_file():
        raise DataDirError(f"{d / 'utt2spk'}: missing; cannot fix a data dir without it")
    utt_tables = _tables(d, UTT_TABLES)
    spk_tables = _tables(d, SPK_TABLES)
    keep = set(utt_tables["utt2spk"])
    for name, table in utt_tables.items():
        keep &= set(table)
    total = len(utt_tables["utt2spk"])
    for name, table in utt_tables.items():
        if len(table) > len(keep):
            log.info("fix_data_dir: %s: dropping %d of %d entries", d / name,
                     len(table) - len(keep), len(table))
    if not keep:
        raise DataDirError(f"{d}: no utterance is in every table ({', '.join(utt_tables)}); "
                           "nothing changed")
    backup = d / ".backup"
    backup.mkdir(exist_ok=True)
    for name in list(utt_tables) + list(spk_tables) + ["spk2utt"]:
        if (d / name).is_file():
            shutil.copy2(d / name, backup / name)
    _write_dir(d, utt_tables, keep, spk_tables)
    log.info("fix_data_dir: %s: kept %d of %d utterances (dropped %d); originals in %s",
             d, len(keep), total, total - len(keep), backup)
    return {"kept": len(keep), "dropped": total - len(keep)}


def _config_files(srcs: Sequence[Path]) -> List[Path]:
    """The config files (fbank.yaml, ...) to copy; they must be identical in every source."""
    out = []
    for name in CONFIG_FILES:
        present = [s / name for s in srcs if (s / name).is_file()]
        texts = {p.read_text(encoding="utf-8") for p in present}
        if present and (len(present) < len(srcs) or len(texts) > 1):
            raise DataDirError(f"{name} differs between {', '.join(map(str, srcs))}; combine "
                               "data dirs with the same features (or none yet)")
        out += present[:1]
    return out


def subset(src, dst, n: Optional[int] = None, utt_list: Optional[Iterable[str]] = None,
           spk_list: Optional[Iterable[str]] = None, seed: int = 0) -> Dict[str, int]:
    """Writes to ``dst`` a copy of ``src`` restricted to ``n`` random utterances (seeded), or to
    the utterances in ``utt_list``, or to the speakers in ``spk_list`` (exactly one of them)."""
    s, d = Path(src), Path(dst)
    if sum(x is not None for x in (n, utt_list, spk_list)) != 1:
        raise DataDirError("subset: give exactly one of n, utt_list, spk_list")
    if s.resolve() == d.resolve():
        raise DataDirError(f"subset: source and destination are both {s}")
    validate(s, need_wav=False)
    utt_tables = _tables(s, UTT_TABLES)
    utt2spk = utt_tables["utt2spk"]
    if n is not None:
        if not 0 < n <= len(utt2spk):
            raise DataDirError(f"subset: asked for {n} utterances, {s} has {len(utt2spk)}")
        keep = random.Random(seed).sample(sorted(utt2spk, key=c_order), n)
    else:
        wanted = set(utt_list) if utt_list is not None else set(spk_list)
        keep = [u for u, spk in utt2spk.items() if (u if utt_list is not None else spk) in wanted]
        known = set(utt2spk) if utt_list is not None else set(utt2spk.values())
        unknown = wanted - known
        if unknown:
            log.warning("subset: %d ids of the list are not in %s, e.g. %s", len(unknown), s,
                        examples(unknown))
        if not keep:
            raise DataDirError(f"subset: none of the listed ids is in {s}")
    kept = _write_dir(d, utt_tables, keep, _tables(s, SPK_TABLES))
    for path in _config_files([s]):
        shutil.copy2(path, d / path.name)
    log.info("subset: %s -> %s: %d of %d utterances", s, d, len(kept), len(utt2spk))
    return {"utterances": len(kept), "speakers": len(set(kept.values()))}


def combine(dst, *srcs) -> Dict[str, int]:
    """Concatenates data dirs into ``dst``; tables missing in some source are left out (warning).
    Utterance ids must be unique across the sources."""
    d, ss = Path(dst), [Path(s) for s in srcs]
    if not ss:
        raise DataDirError("combine: no source data dirs given")
    if any(s.resolve() == d.resolve() for s in ss):
        raise DataDirError(f"combine: destination {d} is also a source")
    for s in ss:
        validate(s, need_wav=False)
    names = [n for n in UTT_TABLES + SPK_TABLES if any((s / n).is_file() for s in ss)]
    common = [n for n in names if all((s / n).is_file() for s in ss)]
    for n in sorted(set(names) - set(common)):
        log.warning("combine: %s is missing in some sources; %s will not have it", n, d)
    merged: Dict[str, Dict[str, str]] = {n: {} for n in common}
    origin: Dict[str, Path] = {}
    dups: Dict[str, List[str]] = {}
    for s in ss:
        for n in common:
            table = read_kv(s / n)
            if n == "utt2spk":
                for u in table:
                    if u in origin:
                        dups.setdefault(u, [str(origin[u])]).append(str(s))
                    origin.setdefault(u, s)
            merged[n].update(table)
    if dups:
        first = sorted(dups, key=c_order)[0]
        raise DataDirError(f"combine: {len(dups)} utterance ids occur in more than one source, "
                           f"e.g. {examples(dups)} ('{first}' is in {' and '.join(dups[first])})")
    configs = _config_files(ss)
    utt_tables = {n: t for n, t in merged.items() if n in UTT_TABLES}
    spk_tables = {n: t for n, t in merged.items() if n in SPK_TABLES}
    kept = _write_dir(d, utt_tables, origin, spk_tables)
    for path in configs:
        shutil.copy2(path, d / path.name)
    log.info("combine: %s -> %s: %d utterances", ", ".join(map(str, ss)), d, len(kept))
    return {"utterances": len(kept), "speakers": len(set(kept.values()))}
