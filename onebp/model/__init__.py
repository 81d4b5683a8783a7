"""The two-tower model: the paper's four modules and what composes them.

* ``encoders`` (module 1 of 4): the user table and the item tower — MF, LightGCN, SimpleX's history
  aggregation, BUIR's online/target MF;
* ``samplers`` (2 of 4): uniform negatives (rejection, vectorised), in-batch negatives;
* ``losses`` (3 of 4): InfoNCE, BPR, DirectAU, CCL, BUIR's bootstrap loss;
* ``updates`` (4 of 4): the update strategies — ``Backprop`` (TwoBP) and ``OneBP``, whose user update
  is ``aggregation`` (the moving aggregation and its ablations); ``optimizer``: Adam and its fast
  step; ``momentum``: BUIR's momentum target;
* ``two_tower``: ``TwoTowerModel`` (what the trainer drives) and ``BuildContext``; ``contracts``: the
  protocols a method's model, an update strategy, a loss and a sampler meet;
  ``compose``: ``compose()``, a model from the four modules (import it from ``onebp.model.compose``:
  here the name is the module's); ``interactions``: per-user item sets on the device.

Imports only the core (``onebp.config``, ``onebp.errors``): nothing of methods, training or data.
Importing the package loads no module: the names below are re-exported on first use."""

from __future__ import annotations

import importlib
from typing import Any

#: public name → the module that defines it (re-exported lazily, on first attribute access)
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(["BuildContext", "TwoTowerModel"], "onebp.model.two_tower"),
    **dict.fromkeys(["TrainableModel", "EpochSteps", "IterativeModel", "OneShotModel", "BuiltModel", "UpdateStrategy",
                     "Loss", "ScoresLoss", "AllItemsLoss", "NegativeSampler"], "onebp.model.contracts"),
    **dict.fromkeys(["make_encoder"], "onebp.model.compose"),
    **dict.fromkeys(["MF", "LightGCN", "GraphSpec", "HistoryAggregation", "BootstrapMF"], "onebp.model.encoders"),
    **dict.fromkeys(["UniformNegatives", "InBatchNegatives"], "onebp.model.samplers"),
    **dict.fromkeys(["InfoNCE", "BPR", "DirectAU", "CosineContrastive", "BootstrapLoss"], "onebp.model.losses"),
    **dict.fromkeys(["Backprop", "OneBP"], "onebp.model.updates"),
    **dict.fromkeys(["AGGREGATIONS", "AggregationPlan", "aggregation_plan", "moving_aggregation", "per_epoch_aggregation", "item_mean_users"], "onebp.model.aggregation"),
    **dict.fromkeys(["make_adam", "adam_step"], "onebp.model.optimizer"),
    **dict.fromkeys(["MomentumTarget", "momentum_update"], "onebp.model.momentum"),
    **dict.fromkeys(["UserItems"], "onebp.model.interactions"),
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    # lazy re-export: importing the package (or one of its modules) loads nothing else
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
