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
import sys
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence

from bccmt.io.tables import TableError, atomic_write, c_order, read_kv

log = logging.getLogger(__name__)

UTT_TABLES = ("utt2spk", "wav.scp", "feats.scp", "utt2dur", "utt2num_frames", "text", "vad.scp",
              "utt2lang")
SPK_TABLES = ("spk2gender", "cmvn.scp")
CONFIG_FILES = ("fbank.yaml", "frame_shift")  # copied verbatim by subset/combine
MAX_EXAMPLES = 3


class DataDirError(ValueError):
    """A data dir (or table) a user must fix; the message says where and how."""


def examples(items: Iterable[str], limit: int = MAX_EXAMPLES) -> str:
    """The first ``limit`` items in byte order, "a, b, c (and N more)": for error messages."""
    items = sorted(items, key=c_order)
    more = f" (and {len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


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
        if c_order(prev) > c_order(key):
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
                   f"utt2spk, e.g. {examples(missing)}{fix}")
    if extra:
        out.append(f"{d / name}: {len(extra)} utterances not in utt2spk, "
                   f"e.g. {examples(extra)}{fix}")
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
    by_utt = sorted(utt2spk, key=c_order)  # speakers must not decrease along it (Kaldi's sort -k2 rule)
    bad = next((u for p, u in zip(by_utt, by_utt[1:]) if c_order(utt2spk[p]) > c_order(utt2spk[u])), None)
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
                   if sorted(want.get(s, []), key=c_order) != have.get(s)]
            if bad:
                problems.append(f"{d / 'spk2utt'}: disagrees with utt2spk for {len(bad)} speakers, "
                                f"e.g. {examples(bad)}; rebuild it with utils/fix_data_dir.py {d}")
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

