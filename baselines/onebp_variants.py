"""OneBP with other encoders and losses: what the composition gives for free.

Chen, E. and Wang, J. One Backpropagation in Two Tower Recommendation Models (2024) — the update;
the encoder/loss come from LightGCN (He et al., SIGIR 2020), BPR (Rendle et al., UAI 2009) and
DirectAU (Wang et al., KDD 2022). Settings are OneBP's official ones (β, lr, l2, batch 1024).

Which combinations are meaningful: OneBP moves each user toward its *positive* items and trains
only the item tower by gradient, so the loss must contain a positive term that pulls items toward
(fixed) users — InfoNCE, BPR, alignment all do.

* ``onebp-lightgcn``: the moving aggregation writes the *layer-0* user table toward the positive
  items' layer-0 rows; propagation then mixes them. Meaningful; gradients reach the item table
  through the graph (users' rows are constants in it).
* ``onebp-bpr``: MF + BPR with one negative; meaningful (the fused MF path is exact for BPR).
* ``onebp-directau``: users carry no gradient, so DirectAU's *user uniformity* term is a constant
  and does nothing; only alignment and item uniformity train the items. Kept as an ablation.
* Not registered: OneBP + BUIR (no user gradient leaves only the item→user-target half) and
  OneBP + SimpleX (its user tower is mostly a learnt function of items, not a table to aggregate).
"""

from dataclasses import dataclass

from onebp.methods.onebp import CITATION, ONEBP_SPACE, PAPER_DEFAULTS
from onebp.methods.registry import Method, register
from onebp.methods.search_space import IntRange, LogUniform
from onebp.model.compose import compose
from onebp.model.losses import BPR, DirectAU, InfoNCE

FAST = {"lr": 0.01, "l2": 0.0, "batch_size": 128, "beta": 0.9}
#: OneBP's space without τ, for the variants whose loss has no temperature
NO_TEMPERATURE = {k: v for k, v in ONEBP_SPACE.items() if k != "temperature"}



@dataclass
class OneBPLightGCNParams:
    n_layers: int = 3  # propagation layers (LightGCN's default)


register(
    Method(
        name="onebp-lightgcn",
        build=lambda ctx: compose(ctx, "lightgcn", InfoNCE(ctx.config.temperature), "onebp",
                                  n_layers=ctx.params["n_layers"]),
        params=OneBPLightGCNParams,
        defaults=PAPER_DEFAULTS,
        citation=CITATION,
        summary="OneBP update with a LightGCN encoder (3 layers by default), InfoNCE",
        test_overrides=FAST,
        search_space={**ONEBP_SPACE, "n_layers": IntRange(1, 3)},
        onebp_update=True,
    )
)
register(
    Method(
        name="onebp-bpr",
        build=lambda ctx: compose(ctx, "mf", BPR(), "onebp"),
        defaults={"*": {"n_negatives": 1}, **{k: {**v, "n_negatives": 1} for k, v in PAPER_DEFAULTS.items()}},
        citation=CITATION,
        summary="OneBP update with MF + BPR (1 negative)",
        test_overrides=FAST,
        search_space=NO_TEMPERATURE,
        onebp_update=True,
    )
)


@dataclass
class OneBPDirectAUParams:
    gamma: float = 1.0  # uniformity weight (DirectAU's default; only item uniformity acts here)


register(
    Method(
        name="onebp-directau",
        build=lambda ctx: compose(ctx, "mf", DirectAU(ctx.params["gamma"]), "onebp", sampler="inbatch"),
        params=OneBPDirectAUParams,
        defaults={"*": {"n_negatives": 0},
                  **{k: {**v, "n_negatives": 0} for k, v in PAPER_DEFAULTS.items()}},
        citation=CITATION,
        summary="OneBP update with MF + DirectAU (user uniformity inert: users get no gradient)",
        test_overrides=FAST,
        search_space={**NO_TEMPERATURE, "gamma": LogUniform(0.01, 10.0)},
        onebp_update=True,
    )
)
