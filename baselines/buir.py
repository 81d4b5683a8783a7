"""``buir``: bootstrapping user and item representations, no negatives.

Lee, D., Kang, S., Ju, H., Park, C. and Yu, H. Bootstrapping User and Item Representations for
One-Class Collaborative Filtering. SIGIR 2021.

Online MF tables + a linear predictor q trained by ``(2 − 2cos(q(u), ξ_i)) + (2 − 2cos(q(i), ξ_u))``
against a target MF that starts as a copy and follows the online tables by momentum
``ξ ← τξ + (1−τ)θ`` (τ = 0.995) after every step (``onebp.model.momentum.MomentumTarget``); ranking by
``q(u)·i + u·q(i)`` (online side). The target's moving average is the closest relative of OneBP's
non-gradient user update. Official settings (author code, ``main.py``): Adam lr 1e-3 with weight
decay 1e-4 on every trained parameter (predictor included), batch 1024, dim 250 (32 on ML-100K
here), τ 0.995. On the ML-100K workflow split (seed 0) test Recall@20 is 0.330 with the weight
decay; an earlier audit run without it gave 0.253.
"""

from dataclasses import dataclass

from onebp.methods.registry import Method, register
from onebp.methods.search_space import LEARNING_RATE, WEIGHT_DECAY, Uniform
from onebp.model.encoders import BootstrapMF
from onebp.model.losses import BootstrapLoss
from onebp.model.momentum import MomentumTarget
from onebp.model.samplers import InBatchNegatives
from onebp.model.two_tower import TwoTowerModel


@dataclass
class BUIRParams:
    tau: float = 0.995


def build(ctx):
    cfg = ctx.config
    encoder = BootstrapMF(ctx.n_users, ctx.n_items, cfg.dim, ctx.generator, ctx.device)
    strategy = MomentumTarget(encoder, BootstrapLoss(), cfg.lr, cfg.l2, cfg.batch_size, ctx.params["tau"])
    return TwoTowerModel(encoder, InBatchNegatives(), strategy)


register(
    Method(
        name="buir",
        build=build,
        params=BUIRParams,
        defaults={"*": {"n_negatives": 0, "lr": 1e-3, "l2": 1e-4, "batch_size": 1024, "dim": 250},
                  "ml-100k": {"dim": 32}, "ml-100k-onebp": {"dim": 32}},
        citation="Lee et al. Bootstrapping User and Item Representations for One-Class Collaborative "
                 "Filtering. SIGIR 2021.",
        summary="BUIR: online/target MF with momentum target and predictor, no negatives",
        test_overrides={"lr": 0.01, "batch_size": 128, "tau": 0.9},
        search_space={"lr": LEARNING_RATE, "l2": WEIGHT_DECAY, "tau": Uniform(0.9, 0.999)},
    )
)
