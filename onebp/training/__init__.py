"""Training one run, and the commands that start one.

* ``trainer``: ``Trainer`` — device, data, the epoch loop, evaluation; composed of
  ``selection`` (``TrainState``: early stopping, best-model selection), ``checkpoint`` (resume
  checkpoints, best-model weights), ``curve_log`` (curve.csv), ``run_record`` (metrics.json),
  ``timing`` (epoch time, phase profile, memory peaks) and ``evaluate`` (full-ranking metrics in
  memory-bounded user chunks); ``device``: the training device and the GPU-slot contract;
* ``commands``: ``onebp train``, ``onebp bench``, ``onebp methods``.

Imports the model, methods and data packages and the core. Importing the package loads no
module: the names below are re-exported on first use."""

from __future__ import annotations

import importlib
from typing import Any

#: public name → the module that defines it (re-exported lazily, on first attribute access)
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(["Trainer", "TrainingDiverged", "run_seeds"], "onebp.training.trainer"),
    **dict.fromkeys(["select_device"], "onebp.training.device"),
    **dict.fromkeys(["TrainState"], "onebp.training.selection"),
    **dict.fromkeys(["Checkpointer", "code_revision"], "onebp.training.checkpoint"),
    **dict.fromkeys(["CurveLog"], "onebp.training.curve_log"),
    **dict.fromkeys(["EpochTimer", "PhaseTimer"], "onebp.training.timing"),
    **dict.fromkeys(["full_ranking_metrics"], "onebp.training.evaluate"),
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    # lazy re-export: importing the package (or one of its modules) loads nothing else
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
