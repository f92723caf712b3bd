"""Kaldi text tables (wav.scp, utt2spk, spk2utt, utt2dur, trials) with errors that name file:line.

A table line is ``<key> <value>``: the key is the first whitespace-delimited field and the value is
the rest of the line with surrounding whitespace stripped (so ``wav.scp`` pipe commands survive).
Writers sort by key in byte order (``LC_ALL=C``) and write atomically (temp file, then rename), so an
interrupted write never leaves a half-written table that looks finished.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Tuple, Union

PathLike = Union[str, os.PathLike]


class TableError(ValueError):
    """A malformed Kaldi table; the message names the file and line."""


def _lines(path: PathLike) -> Iterator[Tuple[int, str]]:
    try:
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                line = line.rstrip("\n")
                if line.strip():
                    yield lineno, line
    except FileNotFoundError:
        raise TableError(f"{path}: no such file") from None
    except UnicodeDecodeError as e:
        raise TableError(f"{path}: not UTF-8 text ({e})") from None


def read_kv(path: PathLike, *, allow_empty_value: bool = False) -> Dict[str, str]:
    """Reads ``key value...`` lines into an insertion-ordered dict.

    Raises TableError on a line without a value, or a duplicated key (naming both lines).
    """
    out: Dict[str, str] = {}
    where: Dict[str, int] = {}
    for lineno, line in _lines(path):
        parts = line.strip().split(maxsplit=1)
        key = parts[0]
        value = parts[1].strip() if len(parts) > 1 else ""
        if not value and not allow_empty_value:
            raise TableError(f"{path}:{lineno}: key '{key}' has no value")
        if key in out:
            raise TableError(f"{path}:{lineno}: duplicate key '{key}' (first on line {where[key]})")
        out[key] = value
        where[key] = lineno
    return out


def read_ids(path: PathLike, what: str = "id") -> List[str]:
    """One id per non-blank line; a line with another number of fields is an error naming the
    file and line."""
    ids = []
    for lineno, line in _lines(path):
        fields = line.split()
        if len(fields) != 1:
            raise TableError(f"{path}:{lineno}: expected one {what} per line, got {line!r}")
        ids.append(fields[0])
    return ids


def read_lists(path: PathLike) -> Dict[str, List[str]]:
    """Reads ``key item1 item2 ...`` lines (spk2utt style) into a dict of lists."""
    return {k: v.split() for k, v in read_kv(path).items()}


def read_trials(path: PathLike, labels: bool = True) -> List[Tuple[str, str, Optional[bool]]]:
    """Reads a Kaldi trial list ``enroll test target|nontarget`` -> [(enroll, test, is_target)]:
    the one trial parser. With ``labels`` False the label is optional (None where absent), as in
    a list to score without a key; an empty list is then an error too."""
    want = "enroll test target|nontarget" if labels else "enroll test [target|nontarget]"
    out: List[Tuple[str, str, Optional[bool]]] = []
    for lineno, line in _lines(path):
        parts = line.split()
        n_ok = len(parts) == 3 or (not labels and len(parts) == 2)
        if not n_ok or (len(parts) == 3 and parts[2] not in ("target", "nontarget")):
            raise TableError(f"{path}:{lineno}: expected '{want}', got '{line.strip()}'")
        out.append((parts[0], parts[1], None if len(parts) == 2 else parts[2] == "target"))
    if not labels and not out:
        raise TableError(f"{path}: no trials")
    return out


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def temp_beside(path: Path) -> Tuple[int, str]:
    """A new temp file in ``path``'s folder (created if needed), open as ``(fd, name)``.

    mkstemp creates it with mode 0600; it gets the mode a plain ``open`` would give (0666 less the
    umask), so that a file renamed onto ``path`` is as readable as one written in place.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_umask())
    return fd, tmp


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "w", **kwargs):
    """Opens a temp file beside ``path``; renames it onto ``path`` only if the block succeeds."""
    path = Path(path)
    fd, tmp = temp_beside(path)
    os.close(fd)
    try:
        with open(tmp, mode, **kwargs) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def c_order(key: str) -> bytes:
    """Sort key of Kaldi's ``LC_ALL=C sort``: the UTF-8 bytes (the one definition)."""
    return key.encode("utf-8")


def write_kv(path: PathLike, items: Union[Dict[str, object], Iterable[Tuple[str, object]]]) -> None:
    """Writes ``key value`` lines sorted by key (byte order), atomically."""
    pairs = list(items.items()) if isinstance(items, dict) else list(items)
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})[:3]
        raise TableError(f"{path}: refusing to write duplicate keys, e.g. {dup}")
    pairs.sort(key=lambda kv: c_order(kv[0]))
    with atomic_write(path, encoding="utf-8") as f:
        for k, v in pairs:
            f.write(f"{k} {v}\n")


def write_lists(path: PathLike, table: Dict[str, Iterable[str]]) -> None:
    """Writes ``key item1 item2 ...`` lines; items sorted, keys sorted, atomically."""
    write_kv(path, {k: " ".join(sorted(v, key=c_order)) for k, v in table.items()})
