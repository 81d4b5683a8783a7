"""What a method is and which methods exist.

* ``spec``: ``Method`` — a name, a ``build`` function, its settings and search space;
* ``registry``: the explicit name → method table, filled by ``discover()`` (the core methods, then
  ``baselines/*.py``);
* ``onebp``: OneBP — the paper's hyper-parameters (``PAPER_DEFAULTS``), search spaces, citation,
  builder; ``twobp``: its TwoBP twin, the same build with both towers trained by backprop;
* ``one_shot``: models fitted in one shot (MostPop, EASE); ``search_space``: what tuning may change;
* ``conformance``: the checks every registered method must pass.

Imports the model package and the core (``conformance`` also the trainer: it trains every method).
Importing the package loads no module: the names below are re-exported on first use, so
``import onebp.methods.registry`` stays torch-free."""

from __future__ import annotations

import importlib
from typing import Any

#: public name → the module that defines it (re-exported lazily, on first attribute access)
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(["Method"], "onebp.methods.spec"),
    **dict.fromkeys(["discover", "get_method", "method_names", "register", "unregister"], "onebp.methods.registry"),
    **dict.fromkeys(["ONEBP", "PAPER_DEFAULTS", "CITATION"], "onebp.methods.onebp"),
    **dict.fromkeys(["TWOBP"], "onebp.methods.twobp"),
    **dict.fromkeys(["MostPop", "EASE"], "onebp.methods.one_shot"),
    **dict.fromkeys(["Choice", "IntRange", "LogUniform", "Uniform"], "onebp.methods.search_space"),
    **dict.fromkeys(["run_battery"], "onebp.methods.conformance"),
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    # lazy re-export: importing the package (or one of its modules) loads nothing else
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
