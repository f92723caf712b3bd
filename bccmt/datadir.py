"""Kaldi data directories: conversions, validation, fixing, subsets, combination, scp splitting.

A data dir holds per-utterance tables keyed by utterance id (``utt2spk``, ``wav.scp``,
``feats.scp``, ``utt2dur``, ``utt2num_frames``, ...), the derived ``spk2utt``, and optionally
per-speaker tables (``spk2gender``, ``cmvn.scp``). Every table is sorted by key in byte order
(``LC_ALL=C``) with unique keys; every utterance of ``utt2spk`` has an entry in each per-utterance
table and vice versa. Utterance ids start with their speaker id (``id10270/x6uYqmx31kE/00001``),
so sorting by utterance also groups speakers, which ``split_scp(..., utt2spk=...)`` relies on.

The maths (conversions, checks, splits) works on dicts and lists; the directory functions read and
write through :mod:`bccmt.io.tables`. Problems raise :class:`DataDirError` with messages naming the
file and line or the utterance, and what to run to fix it.
"""

from __future__ import annotations

import logging
import random
import shutil
import sys
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence

from bccmt.io.tables import TableError, atomic_write, read_kv, write_kv, write_lists

log = logging.getLogger(__name__)

UTT_TABLES = ("utt2spk", "wav.scp", "feats.scp", "utt2dur", "utt2num_frames", "text", "vad.scp",
              "utt2lang")
SPK_TABLES = ("spk2gender", "cmvn.scp")
CONFIG_FILES = ("fbank.yaml", "frame_shift")  # copied verbatim by subset/combine
MAX_EXAMPLES = 3


class DataDirError(ValueError):
    """A data dir (or table) a user must fix; the message says where and how."""


def _c(key: str) -> bytes:
    return key.encode("utf-8")


def _examples(items: Iterable[str]) -> str:
    items = sorted(items, key=_c)
    more = f" (and {len(items) - MAX_EXAMPLES} more)" if len(items) > MAX_EXAMPLES else ""
    return ", ".join(items[:MAX_EXAMPLES]) + more


def utt2spk_to_spk2utt(utt2spk: Dict[str, str]) -> Dict[str, List[str]]:
    """{utt: spk} -> {spk: [utt, ...]}; speakers and utterances keep their input order."""
    out: Dict[str, List[str]] = {}
    for utt, spk in utt2spk.items():
        out.setdefault(spk, []).append(utt)
    return out


def spk2utt_to_utt2spk(spk2utt: Dict[str, Sequence[str]]) -> Dict[str, str]:
    """{spk: [utt, ...]} -> {utt: spk}; an utterance listed under two speakers is an error."""
    out: Dict[str, str] = {}
    for spk, utts in spk2utt.items():
        for utt in utts:
            if utt in out:
                raise DataDirError(
                    f"utterance '{utt}' is listed under speakers '{out[utt]}' and '{spk}'")
            out[utt] = spk
    return out


def filter_scp(ids: Iterable[str], table: Dict[str, str], exclude: bool = False) -> Dict[str, str]:
    """Entries of ``table`` whose key is (``exclude``: is not) in ``ids``, in ``table`` order."""
    keep = set(ids)
    return {k: v for k, v in table.items() if (k in keep) != exclude}


def filter_lines(ids: Iterable[str], lines: Sequence[str], exclude: bool = False) -> List[str]:
    """Lines whose first field is (``exclude``: is not) in ``ids``; order and repeats kept."""
    keep = set(ids)
    return [line for line in lines if (line.split(maxsplit=1)[0] in keep) != exclude]


def split_scp(keys: Sequence[str], num_parts: int,
              utt2spk: Optional[Dict[str, str]] = None) -> List[List[str]]:
    """Splits ``keys`` (scp order) into ``num_parts`` contiguous, non-empty parts.

    Without ``utt2spk`` part sizes differ by at most one (earlier parts take the extra keys); keys
    need not be unique (any lines can be split). With it, each speaker's keys stay in one part (a
    speaker's keys must be contiguous in ``keys``), and the cut points are chosen so that the parts'
    sizes are as even as the speakers allow.
    """
    if num_parts < 1:
        raise DataDirError(f"cannot split into {num_parts} parts")
    if utt2spk is None:
        if len(keys) < num_parts:
            raise DataDirError(f"refusing to split {len(keys)} lines into {num_parts} parts")
        base, extra = divmod(len(keys), num_parts)
        out, start = [], 0
        for i in range(num_parts):
            size = base + (1 if i < extra else 0)
            out.append(list(keys[start:start + size]))
            start += size
        return out
    groups: List[List[str]] = []
    seen = set()
    for key in keys:
        if key not in utt2spk:
            raise DataDirError(f"'{key}' is not in utt2spk")
        spk = utt2spk[key]
        if groups and utt2spk[groups[-1][0]] == spk:
            groups[-1].append(key)
            continue
        if spk in seen:
            raise DataDirError(f"speaker '{spk}' is not contiguous (again at '{key}'); sort the "
                               "scp by utterance id with speaker-prefixed ids")
        seen.add(spk)
        groups.append([key])
    if len(groups) < num_parts:
        raise DataDirError(f"refusing to split {len(groups)} speakers into {num_parts} parts "
                           "(keeping speakers together)")
    prefix = [0]
    for g in groups:
        prefix.append(prefix[-1] + len(g))
    cuts = [0]
    for k in range(1, num_parts):
        target = k * prefix[-1] / num_parts
        lo, hi = cuts[-1] + 1, len(groups) - (num_parts - k)
        cuts.append(min(range(lo, hi + 1), key=lambda j: (abs(prefix[j] - target), j)))
    cuts.append(len(groups))
    return [[k for g in groups[a:b] for k in g] for a, b in zip(cuts[:-1], cuts[1:])]


def _line_of(path: Path, key: str) -> int:
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if line.split(maxsplit=1)[:1] == [key]:
                return lineno
    return 0


def _read(path: Path, problems: List[str]) -> Optional[Dict[str, str]]:
    """Reads a table, recording read errors and unsorted keys in ``problems``."""
    try:
        table = read_kv(path)
    except TableError as e:
        problems.append(str(e))
        return None
    keys = list(table)
    for prev, key in zip(keys, keys[1:]):
        if _c(prev) > _c(key):
            problems.append(f"{path}:{_line_of(path, key)}: not sorted: '{key}' comes after "
                            f"'{prev}' (sort it with LC_ALL=C, or run utils/fix_data_dir.py "
                            f"{path.parent})")
            break
    return table


def _coverage(d: Path, name: str, keys: Dict[str, object], utt2spk: Dict[str, str]) -> List[str]:
    out = []
    missing = [u for u in utt2spk if u not in keys]
    extra = [u for u in keys if u not in utt2spk]
    fix = f"; run utils/fix_data_dir.py {d} to keep only the utterances in both"
    if missing:
        out.append(f"{d / name}: no entry for {len(missing)} of the {len(utt2spk)} utterances in "
                   f"utt2spk, e.g. {_examples(missing)}{fix}")
    if extra:
        out.append(f"{d / name}: {len(extra)} utterances not in utt2spk, "
                   f"e.g. {_examples(extra)}{fix}")
    return out


def _check_numbers(path: Path, table: Dict[str, str], kind: type) -> List[str]:
    for key, value in table.items():
        try:
            ok = kind(value) > 0
        except ValueError:
            ok = False
        if not ok:
            what = "a positive integer" if kind is int else "a positive number"
            return [f"{path}:{_line_of(path, key)}: value '{value}' of '{key}' is not {what}"]
    return []


def find_problems(data_dir, need_feats: bool = False, need_wav: bool = True) -> List[str]:
    """Returns the problems of a data dir as actionable messages (empty list: valid)."""
    d = Path(data_dir)
    if not d.is_dir():
        return [f"{d}: no such data directory"]
    problems: List[str] = []
    for name in ("utt2spk", "spk2utt") + (("wav.scp",) if need_wav else ()) + \
            (("feats.scp",) if need_feats else ()):
        if not (d / name).is_file():
            hint = f" (utils/fix_data_dir.py {d} rebuilds it from utt2spk)"
            problems.append(f"{d / name}: missing" + (hint if name == "spk2utt" else ""))
    if (d / "segments").exists():
        problems.append(f"{d / 'segments'}: segments files are not supported; wav.scp must be "
                        "keyed by utterance")
    if not (d / "utt2spk").is_file():
        return problems
    utt2spk = _read(d / "utt2spk", problems)
    if utt2spk is None:
        return problems
    if not utt2spk:
        return problems + [f"{d / 'utt2spk'}: empty data dir (no utterances)"]
    by_utt = sorted(utt2spk, key=_c)  # speakers must not decrease along it (Kaldi's sort -k2 rule)
    bad = next((u for p, u in zip(by_utt, by_utt[1:]) if _c(utt2spk[p]) > _c(utt2spk[u])), None)
    if bad is not None:
        problems.append(f"{d / 'utt2spk'}: sorting by speaker and by utterance disagree at "
                        f"'{bad}' (speaker '{utt2spk[bad]}'); utterance ids must start with their "
                        "speaker id")
    if (d / "spk2utt").is_file():
        spk2utt = _read(d / "spk2utt", problems)
        if spk2utt is not None:
            want = utt2spk_to_spk2utt(utt2spk)
            have = {s: u.split() for s, u in spk2utt.items()}
            bad = [s for s in set(want) | set(have)
                   if sorted(want.get(s, []), key=_c) != have.get(s)]
            if bad:
                problems.append(f"{d / 'spk2utt'}: disagrees with utt2spk for {len(bad)} speakers, "
                                f"e.g. {_examples(bad)}; rebuild it with utils/fix_data_dir.py {d}")
    for name in UTT_TABLES[1:]:
        if not (d / name).is_file():
            continue
        table = _read(d / name, problems)
        if table is None:
            continue
        problems += _coverage(d, name, table, utt2spk)
        if name == "utt2dur":
            problems += _check_numbers(d / name, table, float)
        elif name == "utt2num_frames":
            problems += _check_numbers(d / name, table, int)
    return problems


def validate(data_dir, need_feats: bool = False, need_wav: bool = True) -> Dict[str, int]:
    """Raises DataDirError listing every problem; returns {"utterances": n, "speakers": m}."""
    problems = find_problems(data_dir, need_feats=need_feats, need_wav=need_wav)
    if problems:
        raise DataDirError(f"{data_dir} is not a valid data dir:\n  " + "\n  ".join(problems))
    utt2spk = read_kv(Path(data_dir) / "utt2spk")
    return {"utterances": len(utt2spk), "speakers": len(set(utt2spk.values()))}


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
        keep = random.Random(seed).sample(sorted(utt2spk, key=_c), n)
    else:
        wanted = set(utt_list) if utt_list is not None else set(spk_list)
        keep = [u for u, spk in utt2spk.items() if (u if utt_list is not None else spk) in wanted]
        known = set(utt2spk) if utt_list is not None else set(utt2spk.values())
        unknown = wanted - known
        if unknown:
            log.warning("subset: %d ids of the list are not in %s, e.g. %s", len(unknown), s,
                        _examples(unknown))
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
        first = sorted(dups, key=_c)[0]
        raise DataDirError(f"combine: {len(dups)} utterance ids occur in more than one source, "
                           f"e.g. {_examples(dups)} ('{first}' is in {' and '.join(dups[first])})")
    configs = _config_files(ss)
    utt_tables = {n: t for n, t in merged.items() if n in UTT_TABLES}
    spk_tables = {n: t for n, t in merged.items() if n in SPK_TABLES}
    kept = _write_dir(d, utt_tables, origin, spk_tables)
    for path in configs:
        shutil.copy2(path, d / path.name)
    log.info("combine: %s -> %s: %d utterances", ", ".join(map(str, ss)), d, len(kept))
    return {"utterances": len(kept), "speakers": len(set(kept.values()))}


def read_lines(path) -> List[str]:
    """The non-blank lines of a text file ("-": stdin), without their newlines."""
    try:
        with open("/dev/stdin" if str(path) == "-" else path, encoding="utf-8") as f:
            return [line.rstrip("\n") for line in f if line.strip()]
    except UnicodeDecodeError as e:
        raise TableError(f"{path}: not UTF-8 text ({e})") from None


def read_id_list(path) -> List[str]:
    """The first field of each line of ``path``, first occurrence only (extra fields ignored)."""
    return list(dict.fromkeys(line.split(maxsplit=1)[0] for line in read_lines(path)))


def write_lines(path, lines: Iterable[str]) -> None:
    """Writes lines in the given order, atomically."""
    with atomic_write(path, encoding="utf-8") as f:
        for line in lines:
            f.write(line + "\n")


def run_cli(main: Callable[[], None]) -> int:
    """Runs a utils/ entry point: logging set up, expected errors as one line without traceback."""
    from bccmt.logging_setup import setup_logging

    setup_logging()
    prog = Path(sys.argv[0]).name
    try:
        main()
    except (DataDirError, TableError) as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        print(f"{prog}: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    return 0

