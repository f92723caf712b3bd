"""Row ranges of Kaldi binary feature matrices, read without reading the whole matrix.

Training takes a 2 s crop of utterances that average 8 s on VoxCeleb; ``kaldiio.load_mat`` reads
and decodes the whole matrix for every crop. ``MatrixReader.read_rows(spec, start, stop)`` reads
the header at the scp entry's byte offset and then only what the rows need:

- ``FM`` (uncompressed float32, row-major): exactly the rows' bytes, one ``pread``.
- ``CM`` (Kaldi's compressed speech-feature format, ``copy-feats --compress=true``, kaldiio
  ``compression_method=2``): a global header (min, range, rows, cols), four uint16 percentiles per
  column, then one byte per value stored column by column. The rows of a crop are not contiguous,
  so the reader takes the whole byte block (a quarter of the float32 matrix) in one ``pread`` and
  decodes only the crop's rows, with the same float32 arithmetic as ``kaldiio.load_mat``: the
  result equals ``load_mat(spec)[start:stop]`` bit for bit.

Anything else (a ``cmd |`` pipe, an ark without an offset, ``CM2``/``CM3``, double matrices) falls
back to ``kaldiio.load_mat`` and a slice. Files are opened once per process (re-opened after a
fork, so DataLoader workers do not share file offsets; ``pread`` has none anyway).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np

# Enough for "\0B" + "CM " + 16-byte global header + 8 bytes per column up to 1,000 columns; an
# "FM" header needs 15 bytes.
_HEAD_BYTES = 23 + 8 * 1000


class MatrixReadError(ValueError):
    """A matrix that cannot be read as its scp entry says; the message names the entry."""


@dataclass(frozen=True)
class MatrixHeader:
    kind: str  # "FM" or "CM"
    rows: int
    cols: int
    data_offset: int  # byte offset of the first value in the ark
    percentiles: Optional[np.ndarray] = None  # CM: (cols, 4) float32 p0, p25, p75, p100


def split_spec(spec: str) -> Optional[Tuple[str, int]]:
    """'path.ark:1234' -> ('path.ark', 1234); None for pipes, slices or entries without an offset."""
    spec = spec.strip()
    if spec.endswith("|") or spec.endswith("]"):
        return None
    path, sep, offset = spec.rpartition(":")
    if not sep or not path or not offset.isdigit():
        return None
    return path, int(offset)


def parse_header(buf: bytes, offset: int, where: str) -> MatrixHeader:
    """The header of a binary Kaldi matrix whose first bytes (at ``offset`` in its ark) are buf."""
    if buf[:2] != b"\0B":
        raise MatrixReadError(f"{where}: no binary Kaldi object at byte {offset}")
    kind = buf[2:5]
    if kind == b"FM ":
        if len(buf) < 15 or buf[5] != 4 or buf[10] != 4:
            raise MatrixReadError(f"{where}: truncated or malformed FM header at byte {offset}")
        rows, cols = struct.unpack("<i", buf[6:10])[0], struct.unpack("<i", buf[11:15])[0]
        return MatrixHeader("FM", rows, cols, offset + 15)
    if kind == b"CM ":
        if len(buf) < 21:
            raise MatrixReadError(f"{where}: truncated CM header at byte {offset}")
        min_value, value_range, rows, cols = struct.unpack("<ffii", buf[5:21])
        end = 21 + 8 * cols
        if cols < 0 or len(buf) < end:
            raise MatrixReadError(f"{where}: truncated CM column headers at byte {offset}")
        raw = np.frombuffer(buf[21:end], dtype="<u2").astype(np.float32)
        # kaldiio's GlobalHeader.uint_to_float, in float32 (Python scalars do not promote).
        pct = (min_value + raw * value_range / 65535.0).reshape(cols, 4)
        return MatrixHeader("CM", rows, cols, offset + end, pct)
    raise MatrixReadError(f"{where}: matrix type {kind!r} at byte {offset} is not FM or CM")


def decode_cm(codes: np.ndarray, pct: np.ndarray) -> np.ndarray:
    """(cols, n) uint8 codes + (cols, 4) percentiles -> (n, cols) float32, kaldiio's arithmetic."""
    x = codes.astype(np.float32)
    p0, p25, p75, p100 = (pct[:, k:k + 1] for k in range(4))
    out = np.where(x <= 64, p0 + (p25 - p0) * x * (1 / 64.0),
                   np.where(x <= 192, p25 + (p75 - p25) * (x - 64.0) * (1 / 128.0),
                            p75 + (p100 - p75) * (x - 192.0) * (1 / 63.0)))
    return np.ascontiguousarray(out.T)


class MatrixReader:
    """Reads rows [start, stop) of the matrix an scp entry points at (see the module doc)."""

    def __init__(self):
        self._fds: Dict[str, int] = {}
        self._pid = os.getpid()

    def _fd(self, path: str) -> int:
        if self._pid != os.getpid():  # forked: the parent's descriptors are not ours to keep
            self._fds, self._pid = {}, os.getpid()
        fd = self._fds.get(path)
        if fd is None:
            fd = os.open(path, os.O_RDONLY)
            self._fds[path] = fd
        return fd

    def _pread(self, fd: int, size: int, offset: int, where: str, exact: bool = True) -> bytes:
        buf = os.pread(fd, size, offset)
        if exact and len(buf) != size:
            raise MatrixReadError(f"{where}: file ends after {len(buf)} of {size} bytes at byte "
                                  f"{offset} (truncated ark?)")
        return buf

    def header(self, spec: str) -> Optional[MatrixHeader]:
        """The matrix header, or None when the entry is not 'ark:offset' (fallback path)."""
        loc = split_spec(spec)
        if loc is None:
            return None
        path, offset = loc
        fd = self._fd(path)
        buf = self._pread(fd, _HEAD_BYTES, offset, spec, exact=False)
        return parse_header(buf, offset, spec)

    def read_rows(self, spec: str, start: int, stop: int,
                  header: Optional[MatrixHeader] = None) -> np.ndarray:
        """(stop - start, cols) float32 = ``kaldiio.load_mat(spec)[start:stop]``."""
        head = header if header is not None else self.header(spec)
        if head is None:
            import kaldiio

            return np.asarray(kaldiio.load_mat(spec), dtype=np.float32)[start:stop]
        if not 0 <= start <= stop <= head.rows:
            raise MatrixReadError(f"{spec}: rows [{start}, {stop}) outside a matrix of {head.rows}")
        path, _ = split_spec(spec)
        fd = self._fd(path)
        if head.kind == "FM":
            row_bytes = 4 * head.cols
            buf = self._pread(fd, (stop - start) * row_bytes, head.data_offset + start * row_bytes,
                              spec)
            return np.frombuffer(buf, dtype="<f4").reshape(stop - start, head.cols).copy()
        buf = self._pread(fd, head.rows * head.cols, head.data_offset, spec)
        codes = np.frombuffer(buf, dtype=np.uint8).reshape(head.cols, head.rows)[:, start:stop]
        return decode_cm(codes, head.percentiles)

    def close(self) -> None:
        if self._pid == os.getpid():
            for fd in self._fds.values():
                os.close(fd)
        self._fds = {}

    def __getstate__(self):  # pickled into spawned workers: descriptors do not travel
        return {"_fds": {}, "_pid": -1}

    def __setstate__(self, state):
        self._fds, self._pid = {}, os.getpid()
