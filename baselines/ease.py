"""``ease``: Steck, H. Embarrassingly Shallow Autoencoders for Sparse Data. WWW 2019.

Closed-form item-item model with L2 weight λ (``lam``; the paper uses 500 on ML-20M), fitted in one
shot by ``onebp.classic_models.EASE``; deterministic, so it has no seeds to vary.
"""

from dataclasses import dataclass

from onebp.classic_models import EASE
from onebp.registry import Method, register
from onebp.search_space import LogUniform


@dataclass
class EASEParams:
    lam: float = 500.0


register(
    Method(
        name="ease",
        build=lambda ctx: EASE(ctx.train, ctx.params["lam"]),
        params=EASEParams,
        citation="Steck. Embarrassingly Shallow Autoencoders for Sparse Data. WWW 2019.",
        summary="EASE closed-form item-item model (non-neural floor)",
        test_overrides={"lam": 10.0},
        search_space={"lam": LogUniform(1.0, 5000.0)},  # λ; the paper tunes it per dataset
    )
)
