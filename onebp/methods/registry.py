"""Method registry: an explicit name → ``Method`` table.

:func:`discover` fills it, explicitly and once: it registers the core methods
(``onebp.methods.onebp.ONEBP`` and ``onebp.methods.twobp.TWOBP``), then imports every ``baselines/<name>.py`` module (next to this
package, plus any directory in ``ONEBP_BASELINES`` — ``os.pathsep``-separated — or passed to
``discover``; installed, the same files are the ``onebp_baselines`` package), each of which
registers its methods by calling ``register(Method(...))``.
Registering a name twice is an error naming both modules. No wildcard imports: discovery imports
files by path, and what a module registers is all it adds. This module imports no method module at
import time (the core method modules do not import it either), so there is no import circle.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from onebp.errors import UserError
from onebp.methods.spec import Method

__all__ = ["Method", "discover", "get_method", "method_names", "register", "unregister"]

BASELINES_DIR = Path(__file__).resolve().parent.parent.parent / "baselines"  # in a source checkout
BASELINES_PACKAGE = "onebp_baselines"  # the same files, installed (pyproject maps baselines/ to it)


def baseline_dirs() -> list[Path]:
    """Where the shipped baselines are: ``baselines/`` next to the package in a checkout (editable
    install), else the installed ``onebp_baselines`` package (a wheel, e.g. in a container)."""
    dirs = [BASELINES_DIR] if BASELINES_DIR.is_dir() else []
    try:
        spec = importlib.util.find_spec(BASELINES_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    for loc in (spec.submodule_search_locations or []) if spec is not None else []:
        if Path(loc).is_dir() and Path(loc).resolve() not in [d.resolve() for d in dirs]:
            dirs.append(Path(loc))
    return dirs



_METHODS: dict[str, Method] = {}
_LOADED: set[Path] = set()
_CORE_REGISTERED = False


def register(method: Method) -> Method:
    module = method.module or _caller_module()
    method = Method(**{**method.__dict__, "module": module})
    if method.name in _METHODS:
        other = _METHODS[method.name].module
        raise UserError(f"method {method.name!r} registered twice: in {other} and in {module}")
    _METHODS[method.name] = method
    return method


def unregister(name: str) -> None:
    """Remove a method (tests that add temporary modules clean up with this)."""
    _METHODS.pop(name, None)


def _caller_module() -> str:
    frame = sys._getframe(2)
    return frame.f_globals.get("__file__") or frame.f_globals.get("__name__", "?")


def register_core_methods() -> None:
    """Register the methods defined in the package itself (OneBP and its TwoBP twin), once."""
    global _CORE_REGISTERED
    if _CORE_REGISTERED:
        return
    # imported on first use: `onebp data ...` needs no torch
    from onebp.methods.onebp import ONEBP
    from onebp.methods.twobp import TWOBP

    for method in (ONEBP, TWOBP):
        register(method)
    _CORE_REGISTERED = True


def discover(extra_dirs: Iterable[str | os.PathLike] = ()) -> None:
    """Register the core methods, then import every baselines module not imported yet.

    ``extra_dirs`` (the ``--baselines`` directories) must exist: one mistyped would otherwise drop
    its methods silently and the run fail later with "unknown method". ``ONEBP_BASELINES`` is a
    search path (like ``PATH``) and the shipped ``baselines/`` may be absent when installed: a
    missing entry there is skipped."""
    extra = [Path(d) for d in extra_dirs]
    for d in extra:  # checked before anything is imported
        if not d.is_dir():
            raise UserError(f"--baselines {d}: {'not a directory' if d.exists() else 'no such directory'}")
    register_core_methods()
    dirs = [*baseline_dirs(), *extra]
    env = os.environ.get("ONEBP_BASELINES", "")
    dirs += [Path(d) for d in env.split(os.pathsep) if d]
    for d in dirs:
        if not d.is_dir():
            continue
        for path in sorted(d.glob("*.py")):
            if path.name.startswith("_"):
                continue
            load_module(path)


def load_module(path: str | os.PathLike) -> None:
    path = Path(path).resolve()
    if path in _LOADED:
        return
    _LOADED.add(path)
    name = f"onebp_baselines_{path.stem}_{abs(hash(str(path))) % 10**8}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"{path}: cannot import as a baseline module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except UserError:
        raise
    except Exception as exc:
        _LOADED.discard(path)
        sys.modules.pop(name, None)
        raise UserError(f"{path}: error while importing baseline module: {exc!r}") from exc


def get_method(name: str) -> Method:
    discover()
    if name not in _METHODS:
        raise UserError(f"unknown method {name!r}; known: {', '.join(sorted(_METHODS))}")
    return _METHODS[name]


def method_names() -> list[str]:
    discover()
    return sorted(_METHODS)
