"""The package's structure: no import circle, one file name per kind of thing, explicit registration."""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys
from collections import Counter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "onebp"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_onebp_modules(path: Path, known: set[str]) -> set[str]:
    """Every onebp module ``path`` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from onebp.x import y`: y may be a module (onebp.x.y) or a name in onebp.x
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        found |= {n for n in names if n in known}
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    known = set(files)
    graph = {}
    for name, path in files.items():
        deps = imported_onebp_modules(path, known) - {name}
        # importing onebp.a.b runs onebp/a/__init__.py first; packages' own __init__ are not edges back
        graph[name] = {d for d in deps if not name.startswith(d + ".")}
    return graph


def test_no_module_imports_one_that_imports_it_back():
    graph = import_graph()
    assert "onebp.methods.onebp" in graph["onebp.methods.registry"], "registry no longer registers the core methods?"
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        raise AssertionError(f"import circle: {' -> '.join(exc.args[1])}") from None


def test_a_cycle_is_detected_by_this_check(tmp_path):
    # the check above can fail: a two-module circle is reported
    graph = {"a": {"b"}, "b": {"a"}}
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError:
        return
    raise AssertionError("cycle not detected")


def test_importing_the_registry_imports_no_method_module():
    code = "import sys, onebp.methods.registry; print(sorted(m for m in sys.modules if m.startswith('onebp')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = eval(out)  # a printed list of strings
    assert "onebp.methods.onebp" not in loaded and "torch" not in out
    assert set(loaded) <= {"onebp", "onebp.errors", "onebp.methods", "onebp.methods.spec", "onebp.methods.registry"}


def test_no_two_source_files_share_a_name_unless_same_kind():
    same_kind = {"__init__.py", "__main__.py", "cli.py"}
    counts = Counter(p.name for p in PACKAGE.rglob("*.py") if p.name not in same_kind)
    assert [n for n, c in counts.items() if c > 1] == []


def test_trainer_fits_on_a_screen():
    # the loop stays readable: checkpointing, selection, timing and the run record live elsewhere
    tree = ast.parse((PACKAGE / "training" / "trainer.py").read_text())
    trainer = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Trainer")
    assert trainer.end_lineno - trainer.lineno + 1 < 120
