"""Tuning: every method tuned with one budget, its trials drawn up front.

* ``trials``: ``TuningBudget``, the trials of a method (trial 0 = its own settings, then draws from
  its search space), the best trial and the summary;
* ``cli``: ``onebp tune plan|summarize``.

Imports methods and the core. Importing the package loads no module: the names below are
re-exported on first use."""

from __future__ import annotations

import importlib
from typing import Any

#: public name → the module that defines it (re-exported lazily, on first attribute access)
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(["TuningBudget", "method_trials", "draw_trials", "best_trial", "summarize"], "onebp.tuning.trials"),
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    # lazy re-export: importing the package (or one of its modules) loads nothing else
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
