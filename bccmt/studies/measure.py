"""Wall time, CPU time and peak memory of a child process tree, for the benchmarks."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Measure:
    wall_s: float  # from start to exit
    cpu_s: float  # user + system of the child and the descendants it waited for
    max_rss_mb: float  # peak RSS of the largest process among them
    returncode: int = 0


def wait_measured(proc: subprocess.Popen, t0: float) -> Measure:
    """Waits for proc (started at time.perf_counter() == t0) -> its Measure (``os.wait4``: the
    rusage of this child alone, not of other children of the caller)."""
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Measure(wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024.0, proc.returncode)


def log_tail(path: Path, lines: int = 5) -> str:
    """The last lines of a log, indented, for an error message."""
    tail = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    return "\n  " + "\n  ".join(tail)
