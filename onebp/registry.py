"""Method registry: an explicit name → ``Method`` table.

``onebp.methods`` registers the core methods; every ``baselines/<name>.py`` module (next to this
package, plus any directory in ``ONEBP_BASELINES`` — ``os.pathsep``-separated — or passed to
``discover``) is imported once and registers its methods by calling ``register(Method(...))``.
Registering a name twice is an error naming both modules. No wildcard imports: discovery imports
files by path, and what a module registers is all it adds.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from onebp.errors import UserError

BASELINES_DIR = Path(__file__).resolve().parent.parent / "baselines"


@dataclass(frozen=True)
class Method:
    """A named composition of encoder, sampler, loss and update strategy.

    ``build(ctx)`` returns the trainable model (see ``onebp.model``) for a ``BuildContext``;
    ``params`` is the dataclass of the method's own hyper-parameters (or None); ``defaults`` maps a
    dataset name (or ``"*"``) to setting overrides taken from the method's paper.
    ``test_overrides`` are settings under which the method learns within a few epochs on the
    conformance battery's tiny synthetic data (``onebp.conformance``); never used for real runs.
    """

    name: str
    build: Callable[[Any], Any]
    params: type | None = None
    defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    citation: str = ""
    summary: str = ""
    module: str = ""
    test_overrides: Mapping[str, Any] = field(default_factory=dict)


_METHODS: dict[str, Method] = {}
_LOADED: set[Path] = set()
_DISCOVERED = False


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


def discover(extra_dirs: Iterable[str | os.PathLike] = ()) -> None:
    """Import the core methods and every baselines module not imported yet."""
    global _DISCOVERED
    if not _DISCOVERED:
        import onebp.methods  # noqa: F401  (registers the core methods)

        _DISCOVERED = True
    dirs = [BASELINES_DIR, *extra_dirs]
    env = os.environ.get("ONEBP_BASELINES", "")
    dirs += [d for d in env.split(os.pathsep) if d]
    for d in dirs:
        d = Path(d)
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
