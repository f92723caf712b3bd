"""Package layering: studies and benchmarks sit above the method packages, and the torch-free
runtime stays torch-free."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "bccmt"


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names)


def test_no_method_module_imports_a_study_or_benchmark():
    bad = [f"{p.relative_to(PKG.parent)} imports {m}" for p in PKG.rglob("*.py")
           if p.parent.name not in ("bin", "studies")
           for m in _imports(p) if m.startswith("bccmt.studies")]
    assert bad == []


def test_runtime_does_not_import_torch_or_the_graph():
    bad = [f"{p.name} imports {m}" for p in (PKG / "runtime").glob("*.py")
           for m in _imports(p) if m.split(".")[0] == "torch" or m in ("bccmt.inputs",
                                                                      "bccmt.embed")]
    assert bad == []
