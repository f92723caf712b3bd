"""One logging setup for every entry point: time, level, file:line; optional log file."""

from __future__ import annotations

import logging
import sys
from typing import Optional

FORMAT = "%(asctime)s %(levelname)s [%(filename)s:%(lineno)d] %(message)s"


def setup_logging(log_file: Optional[str] = None, level: int = logging.INFO) -> None:
    """Logs to stderr and, when given, appends to ``log_file`` (rank-0 processes only)."""
    handlers = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    logging.basicConfig(level=level, format=FORMAT, handlers=handlers, force=True)
