"""OneBP (``ONEBP``), and the builder its TwoBP twin (``onebp/methods/twobp.py``) shares.

``onebp.methods.registry.discover`` registers both. This module does not
import the registry (no import circle, no registration as an import side effect).

OneBP and TwoBP differ only in the update strategy: encoder (MF), sampler (uniform, N negatives),
loss (InfoNCE, temperature τ) are built by the same function from the same settings.
"""

from __future__ import annotations

from onebp.methods.search_space import LEARNING_RATE, ONEBP_BETA, TEMPERATURE, WEIGHT_DECAY
from onebp.methods.spec import Method
from onebp.model.compose import compose
from onebp.model.losses import InfoNCE
from onebp.model.samplers import UniformNegatives
from onebp.model.two_tower import BuildContext, TwoTowerModel

CITATION = (
    "Chen, E. and Wang, J. One Backpropagation in Two Tower Recommendation Models. "
    "arXiv:2403.18227 (2024); Neurocomputing (2026)."
)

#: The official hyper-parameters (batch 1024, N 5, τ 1, Adam, constant lr; docs/method.md). Their one
#: home: config.yaml does not repeat them (tests/workflow/test_config_schema.py, tests/test_docs.py).
PAPER_DEFAULTS = {
    "ml-100k": {"l2": 1e-5, "lr": 5e-4, "dim": 32, "beta": 0.99, "epochs": 2000},
    "ml-100k-onebp": {"l2": 1e-5, "lr": 5e-4, "dim": 32, "beta": 0.99, "epochs": 2000},
    "ml-1m": {"l2": 1e-6, "lr": 1e-3, "dim": 128, "beta": 0.99, "epochs": 200},
    # The authors' ML-1M split (official test file, rebuilt train file; docs/data.md): their ML-1M row.
    "ml-1m-onebp": {"l2": 1e-6, "lr": 1e-3, "dim": 128, "beta": 0.99, "epochs": 200},
    "gowalla": {"l2": 0.0, "lr": 5e-4, "dim": 1024, "beta": 0.999, "epochs": 1800},
    "yelp2018": {"l2": 0.0, "lr": 5e-5, "dim": 2048, "beta": 0.999, "epochs": 1800},
}


#: What tuning may change for OneBP (trial 0 = PAPER_DEFAULTS); TWOBP_SPACE: the same minus β.
ONEBP_SPACE = {"lr": LEARNING_RATE, "l2": WEIGHT_DECAY, "temperature": TEMPERATURE, "beta": ONEBP_BETA}
TWOBP_SPACE = {k: v for k, v in ONEBP_SPACE.items() if k != "beta"}



def build_mf_infonce(ctx: BuildContext, update: str) -> TwoTowerModel:
    """MF + uniform negatives + InfoNCE, trained by ``update`` ("onebp" or "backprop")."""
    cfg = ctx.config
    sampler = UniformNegatives(ctx.train, cfg.n_negatives, replace=cfg.negatives_replace)
    return compose(ctx, "mf", InfoNCE(cfg.temperature), update, sampler=sampler)


ONEBP = Method(
    name="onebp",
    build=lambda ctx: build_mf_infonce(ctx, "onebp"),
    defaults=PAPER_DEFAULTS,
    citation=CITATION,
    summary="MF + InfoNCE; items by backprop, users by moving aggregation (OneBP)",
    module=__name__,
    search_space=ONEBP_SPACE,
    onebp_update=True,
)
