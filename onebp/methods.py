"""Core methods: OneBP, and the builder its TwoBP twin (``baselines/twobp.py``) shares.

OneBP and TwoBP differ only in the update strategy: encoder (MF), sampler (uniform, N negatives),
loss (InfoNCE, temperature τ) are built by the same function from the same settings.
"""

from __future__ import annotations

from onebp.encoders import MF
from onebp.losses import InfoNCE
from onebp.model import BuildContext, TwoTowerModel
from onebp.registry import Method, register
from onebp.samplers import UniformNegatives
from onebp.updates import Backprop, OneBP

CITATION = (
    "Chen, E. and Wang, J. One Backpropagation in Two Tower Recommendation Models. "
    "arXiv:2403.18227 (2024); Neurocomputing (2026)."
)

#: The official hyper-parameters (batch 1024, N 5, τ 1, Adam, constant lr), DESIGN.md §1.
PAPER_DEFAULTS = {
    "ml-100k": {"l2": 1e-5, "lr": 5e-4, "dim": 32, "beta": 0.99, "epochs": 2000},
    "ml-100k-onebp": {"l2": 1e-5, "lr": 5e-4, "dim": 32, "beta": 0.99, "epochs": 2000},
    "ml-1m": {"l2": 1e-6, "lr": 1e-3, "dim": 128, "beta": 0.99, "epochs": 200},
    "gowalla": {"l2": 0.0, "lr": 5e-4, "dim": 1024, "beta": 0.999, "epochs": 1800},
    "yelp2018": {"l2": 0.0, "lr": 5e-5, "dim": 2048, "beta": 0.999, "epochs": 1800},
}


def build_mf_infonce(ctx: BuildContext, update: str) -> TwoTowerModel:
    """MF + uniform negatives + InfoNCE, trained by ``update`` ("onebp" or "backprop")."""
    cfg = ctx.config
    encoder = MF(ctx.n_users, ctx.n_items, cfg.dim, ctx.generator, ctx.device)
    sampler = UniformNegatives(ctx.train, cfg.n_negatives, replace=cfg.negatives_replace)
    loss = InfoNCE(cfg.temperature)
    if update == "onebp":
        strategy = OneBP(encoder, loss, cfg.lr, cfg.l2, cfg.fused, cfg.batch_size, beta=cfg.beta,
                         aggregation=cfg.aggregation, duplicate_users=cfg.duplicate_users)
    else:
        strategy = Backprop(encoder, loss, cfg.lr, cfg.l2, cfg.fused, cfg.batch_size)
    return TwoTowerModel(encoder, sampler, strategy)


register(
    Method(
        name="onebp",
        build=lambda ctx: build_mf_infonce(ctx, "onebp"),
        defaults=PAPER_DEFAULTS,
        citation=CITATION,
        summary="MF + InfoNCE; items by backprop, users by moving aggregation (OneBP)",
        module=__name__,
    )
)
