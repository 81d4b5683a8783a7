"""The package's structure: which package may import which (the layering), no import circle, one
file name per kind of thing, explicit registration, every module at its home."""

from __future__ import annotations

import ast
import graphlib
import importlib
import importlib.util
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "onebp"

#: the lowest layer: every package may import it, and it imports only itself
CORE = frozenset({"onebp", "onebp.errors", "onebp.atomic", "onebp.config", "onebp.safe_paths"})
#: the command line's entry point registers every package's subcommands, so it may import anything
ENTRY_POINTS = frozenset({"onebp.cli", "onebp.__main__"})

#: package → the packages its modules may import (besides core and itself). Read bottom-up:
#: data and model know nothing of the rest; a method composes the model; training drives methods on
#: data; tuning and operations drive training; report only reads finished runs from disk.
LAYERS: dict[str, frozenset[str]] = {
    "core": frozenset(),
    "data": frozenset(),
    "model": frozenset(),
    "methods": frozenset({"model"}),
    "training": frozenset({"model", "methods", "data"}),
    "tuning": frozenset({"model", "methods", "data", "training"}),
    "operations": frozenset({"model", "methods", "data", "training", "tuning"}),
    "report": frozenset(),
}
#: the named exceptions, module → extra packages it may import, each with its reason
EXCEPTIONS: dict[str, frozenset[str]] = {
    # the conformance battery every method must pass trains each method with the real trainer on
    # synthetic data: it is the methods' contract, written as training runs
    "onebp.methods.conformance": frozenset({"training", "data"}),
}

#: where every module that left the flat package lives now (old name → new name)
MOVED = {
    "onebp.encoders": "onebp.model.encoders",
    "onebp.samplers": "onebp.model.samplers",
    "onebp.losses": "onebp.model.losses",
    "onebp.interactions": "onebp.model.interactions",
    "onebp.model": "onebp.model.two_tower",
    "onebp.updates": "onebp.model.updates",
    "onebp.methods": "onebp.methods.onebp",
    "onebp.method_spec": "onebp.methods.spec",
    "onebp.registry": "onebp.methods.registry",
    "onebp.conformance": "onebp.methods.conformance",
    "onebp.classic_models": "onebp.methods.one_shot",
    "onebp.search_space": "onebp.methods.search_space",
    "onebp_baselines.twobp": "onebp.methods.twobp",
    "onebp.train": "onebp.training.trainer",
    "onebp.selection": "onebp.training.selection",
    "onebp.checkpoint": "onebp.training.checkpoint",
    "onebp.curve_log": "onebp.training.curve_log",
    "onebp.run_record": "onebp.training.run_record",
    "onebp.timing": "onebp.training.timing",
    "onebp.evaluate": "onebp.training.evaluate",
    "onebp.commands": "onebp.training.commands",
    "onebp.tuning": "onebp.tuning.trials",
    "onebp.tune_cli": "onebp.tuning.cli",
    "onebp.gpu_slots": "onebp.operations.gpu_slots",
    "onebp.status": "onebp.operations.status",
    "onebp.estimate": "onebp.operations.estimate",
    "onebp.bench_suite": "onebp.operations.bench_suite",
    "onebp.device_agreement": "onebp.operations.device_agreement",
    "onebp.published": "onebp.report.published",
}
#: modules that are new, cut out of one that moved
NEW = ("onebp.model.compose", "onebp.model.optimizer", "onebp.model.aggregation", "onebp.model.momentum",
       "onebp.training.device")


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
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


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    files = {module_name(p, package): p for p in package.rglob("*.py")}
    known = set(files)
    graph = {}
    for name, path in files.items():
        deps = imported_onebp_modules(path, known) - {name}
        # importing onebp.a.b runs onebp/a/__init__.py first; packages' own __init__ are not edges back
        graph[name] = {d for d in deps if not name.startswith(d + ".")}
    return graph


def package_of(module: str) -> str:
    """``onebp.model.encoders`` → ``model``; a top-level module (``onebp.config``) → ``core``."""
    parts = module.split(".")
    if len(parts) >= 2 and (PACKAGE / parts[1]).is_dir():
        return parts[1]
    return "core"


def layering_violations(graph: dict[str, set[str]]) -> list[str]:
    """Every import that the layering table does not allow, as ``importer -> imported``."""
    bad = []
    for module, deps in sorted(graph.items()):
        if module in ENTRY_POINTS:
            continue
        own = package_of(module)
        if module in CORE:
            allowed_packages: frozenset[str] = frozenset()
        else:
            allowed_packages = LAYERS[own] | {own} | EXCEPTIONS.get(module, frozenset())
        for dep in sorted(deps):
            if dep in CORE:
                continue
            if package_of(dep) not in allowed_packages:
                bad.append(f"{module} -> {dep}")
    return bad


def test_every_package_is_in_the_layering_table():
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert packages | {"core"} == set(LAYERS)
    top_level = {module_name(p) for p in PACKAGE.glob("*.py")} - ENTRY_POINTS
    assert top_level == CORE, "a new top-level module: put it in a package, or add it to CORE on purpose"


def test_packages_import_only_what_the_layering_allows():
    assert layering_violations(import_graph()) == []


def test_the_layering_check_reports_a_violating_graph():
    # the check above can fail: a model module reaching up into training, data importing the
    # model, report reading methods, and a core module importing a package are all reported
    graph = {
        "onebp.model.encoders": {"onebp.training.trainer", "onebp.config"},
        "onebp.data.prepare": {"onebp.model.interactions", "onebp.errors"},
        "onebp.report.claims": {"onebp.methods.registry"},
        "onebp.config": {"onebp.data.catalog"},
        "onebp.training.trainer": {"onebp.model.encoders", "onebp.methods.spec", "onebp.data.split_format"},
        "onebp.methods.conformance": {"onebp.training.trainer"},  # the named exception
        "onebp.cli": {"onebp.report.cli"},  # the entry point
    }
    assert layering_violations(graph) == [
        "onebp.config -> onebp.data.catalog",
        "onebp.data.prepare -> onebp.model.interactions",
        "onebp.model.encoders -> onebp.training.trainer",
        "onebp.report.claims -> onebp.methods.registry",
    ]


def import_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of imports in ``graph`` (module -> the modules it imports), or None."""
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return None


def test_no_module_imports_one_that_imports_it_back():
    graph = import_graph()
    assert "onebp.methods.onebp" in graph["onebp.methods.registry"], "registry no longer registers the core methods?"
    circle = import_circle(graph)
    assert circle is None, f"import circle: {' -> '.join(circle)}"


def test_a_circle_is_detected_by_this_check(tmp_path):
    """The check above can fail: a package whose two modules import each other is reported."""
    pkg = tmp_path / "onebp"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from onebp import b\n")
    (pkg / "b.py").write_text("import onebp.a\n")
    graph = import_graph(pkg)
    assert graph["onebp.a"] >= {"onebp.b"} and graph["onebp.b"] >= {"onebp.a"}
    assert sorted(set(import_circle(graph))) == ["onebp.a", "onebp.b"]


def loaded_after(code: str) -> list[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    probe = f"{code}\nimport sys; print(sorted(sys.modules))"
    return eval(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                               check=True).stdout)  # a printed list of strings


def test_importing_the_registry_imports_no_method_module():
    loaded = loaded_after("import onebp.methods.registry")
    assert "torch" not in loaded and "onebp.methods.onebp" not in loaded
    assert {m for m in loaded if m.startswith("onebp")} <= {
        "onebp", "onebp.errors", "onebp.methods", "onebp.methods.spec", "onebp.methods.registry"}


def test_the_data_commands_and_the_parser_import_no_torch():
    # `onebp data ...`, `onebp --help` and gpu-run start fast and run where torch is absent
    loaded = loaded_after("import onebp.data.cli, onebp.data.prepare, onebp.data.dataset_stats, "
                          "onebp.operations.gpu_slots, onebp.training.device\n"
                          "from onebp.cli import build_parser; build_parser()")
    assert "torch" not in loaded


@pytest.mark.parametrize("old, new", sorted(MOVED.items()))
def test_every_moved_module_imports_from_its_new_home_only(old, new):
    module = importlib.import_module(new)
    assert module.__name__ == new and module.__doc__, f"{new} has no docstring"
    # and no shim is left at the old path
    if old == "onebp_baselines.twobp":
        assert not (PACKAGE.parent / "baselines" / "twobp.py").exists()
    elif old in {"onebp.model", "onebp.methods", "onebp.tuning"}:  # packages now
        assert hasattr(importlib.import_module(old), "__path__")
    else:
        assert importlib.util.find_spec(old) is None, f"{old} still importable"


@pytest.mark.parametrize("name", NEW)
def test_every_new_module_imports(name):
    assert importlib.import_module(name).__doc__


SUBPACKAGES = ("model", "methods", "training", "tuning", "operations")


@pytest.mark.parametrize("package", SUBPACKAGES)
def test_each_package_names_its_public_surface_and_loads_nothing_on_import(package):
    name = f"onebp.{package}"
    loaded = loaded_after(f"import {name}")
    assert not [m for m in loaded if m.startswith(name + ".")] and "torch" not in loaded
    module = importlib.import_module(name)
    assert module.__doc__ and module.__all__
    for public in module.__all__:
        assert getattr(module, public) is not None
        # a name that is also a submodule's would be shadowed by the module once that is imported
        assert not (PACKAGE / package / f"{public}.py").exists(), f"{name}.{public} is also a module"
    with pytest.raises(AttributeError):
        module.no_such_name  # noqa: B018 (the attribute access is the test)


def test_no_two_source_files_share_a_name_unless_same_kind():
    same_kind = {"__init__.py", "__main__.py", "cli.py"}
    counts = Counter(p.name for p in PACKAGE.rglob("*.py") if p.name not in same_kind)
    assert [n for n, c in counts.items() if c > 1] == []


def test_trainer_fits_on_a_screen():
    # the loop stays readable: checkpointing, selection, timing and the run record live elsewhere
    tree = ast.parse((PACKAGE / "training" / "trainer.py").read_text())
    trainer = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Trainer")
    assert trainer.end_lineno - trainer.lineno + 1 < 120
