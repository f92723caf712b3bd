"""Named blocks in generated markdown files (RESULTS.md): one writer per block, reruns replace it.

A block is ``<!-- begin NAME -->`` ... ``<!-- end NAME -->``. Stage 6 rewrites RESULTS.md and keeps
the blocks other stages wrote (stage 7's export tables); stage 7 replaces only its own block.
"""

from __future__ import annotations

import re
from typing import Dict


def _pattern(name: str):
    return re.compile(rf"<!-- begin {re.escape(name)} -->\n.*?<!-- end {re.escape(name)} -->\n?",
                      re.S)


def block(name: str, body: str) -> str:
    return f"<!-- begin {name} -->\n{body.rstrip()}\n<!-- end {name} -->\n"


def replace_block(text: str, name: str, body: str) -> str:
    """``text`` with block ``name`` set to ``body`` (appended when it is not there yet)."""
    new = block(name, body)
    pat = _pattern(name)
    if pat.search(text):
        return pat.sub(lambda _: new, text, count=1)
    return text.rstrip("\n") + ("\n\n" if text.strip() else "") + new


def blocks(text: str) -> Dict[str, str]:
    """name -> whole block (markers included) of every block in ``text``."""
    return {m.group(1): m.group(0) for m in re.finditer(
        r"<!-- begin (\S+) -->\n.*?<!-- end \1 -->\n?", text, re.S)}


def write_block(path, name: str, body: str) -> None:
    """Sets block ``name`` of the markdown file ``path`` (created if missing), atomically."""
    from pathlib import Path

    from bccmt.io.tables import atomic_write

    path = Path(path)
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    with atomic_write(path, encoding="utf-8") as f:
        f.write(replace_block(old, name, body))


def publish(text: str, out, results=None, name: str = "") -> None:
    """Writes ``text`` to ``out``, prints it, and sets it as block ``name`` of ``results``."""
    from bccmt.io.tables import atomic_write

    with atomic_write(out, encoding="utf-8") as f:
        f.write(text)
    print(text)
    if results:
        write_block(results, name, text)


def table_tool_parser(doc: str):
    """argparse parser of the tools that write a markdown table of exp dirs (stage 7):
    --exps, --out, --results."""
    import argparse

    p = argparse.ArgumentParser(description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exps", required=True, nargs="+", help="exp dirs (each with export/)")
    p.add_argument("--out", required=True, help="markdown file for the table")
    p.add_argument("--results", default=None, help="RESULTS.md to put the table into (a block)")
    return p
