"""File handling at the edges: Kaldi text tables, trials, ark/scp."""

from bccmt.io.tables import (
    TableError,
    atomic_write,
    c_order,
    read_kv,
    read_lists,
    read_trials,
    write_kv,
    write_lists,
)

__all__ = [
    "TableError",
    "atomic_write",
    "c_order",
    "read_kv",
    "read_lists",
    "read_trials",
    "write_kv",
    "write_lists",
]
