"""Embedding vectors as Kaldi ark/scp (binary float32 vectors), via kaldiio.

``write_vectors`` streams (key, vector) pairs into ``<name>.ark`` and writes ``<name>.scp`` with
``key ark-path:byte-offset`` lines. The ark is written under a temporary name and renamed, and the
scp is written last (atomically), so a finished-looking scp always points at a complete ark.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator, List, Tuple, Union

import kaldiio
import numpy as np
from kaldiio.matio import write_array

from bccmt.io.tables import TableError, atomic_write, read_kv

PathLike = Union[str, os.PathLike]


def write_vectors(ark: PathLike, scp: PathLike, items: Iterable[Tuple[str, np.ndarray]]) -> int:
    """Writes float32 vectors to ``ark`` and their index to ``scp``; returns the count.

    The scp names ``ark`` exactly as given (Kaldi convention: relative paths stay relative to the
    working directory of the recipe). Raises TableError on duplicate keys or non-1-D arrays.
    """
    ark = Path(ark)
    ark.parent.mkdir(parents=True, exist_ok=True)
    tmp = ark.with_name(f".{ark.name}.tmp")
    offsets: List[Tuple[str, int]] = []
    seen = set()
    try:
        with open(tmp, "wb") as f:
            for key, vec in items:
                if not key or any(c.isspace() for c in key):
                    raise TableError(f"{ark}: invalid key {key!r}")
                if key in seen:
                    raise TableError(f"{ark}: duplicate key '{key}'")
                seen.add(key)
                vec = np.asarray(vec, dtype=np.float32)
                if vec.ndim != 1:
                    raise TableError(f"{ark}: '{key}' is not a vector (shape {vec.shape})")
                f.write(key.encode("utf-8") + b" ")
                offsets.append((key, f.tell()))
                write_array(f, vec)
        if os.path.exists(scp):  # an old scp must never index the new ark
            os.unlink(scp)
        os.replace(tmp, ark)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise
    with atomic_write(scp, encoding="utf-8") as f:
        for key, off in offsets:
            f.write(f"{key} {ark}:{off}\n")
    return len(offsets)


def iter_vectors(scp: PathLike) -> Iterator[Tuple[str, np.ndarray]]:
    """Yields (key, float32 vector) in scp order. Errors name the scp file and key."""
    table = read_kv(scp)  # validates the scp itself: duplicates and empty lines name file:line
    stream = kaldiio.load_scp_sequential(str(scp))  # keeps each ark open: fast for big tables
    for key, spec in table.items():
        try:
            got, vec = next(stream)
        except Exception as e:  # kaldiio raises assorted types for bad offsets/files
            raise TableError(f"{scp}: cannot read '{key}' from '{spec}': {e}") from None
        if got != key:
            raise TableError(f"{scp}: expected '{key}', read '{got}'")
        vec = np.asarray(vec, dtype=np.float32)
        if vec.ndim == 2 and vec.shape[0] == 1:
            vec = vec[0]
        if vec.ndim != 1:
            raise TableError(f"{scp}: '{key}' is not a vector (shape {vec.shape})")
        yield key, vec


def read_vectors(scp: PathLike) -> Tuple[List[str], np.ndarray]:
    """Reads all vectors of an scp -> (keys, (N, D) float32 matrix). All must share one dim."""
    keys: List[str] = []
    rows: List[np.ndarray] = []
    for key, vec in iter_vectors(scp):
        if rows and vec.shape != rows[0].shape:
            raise TableError(f"{scp}: '{key}' has dim {vec.shape[0]}, expected {rows[0].shape[0]}")
        keys.append(key)
        rows.append(vec)
    if not rows:
        raise TableError(f"{scp}: no vectors")
    return keys, np.stack(rows)
