"""Non-neural sanity floors, fitted in one shot (``onebp.classic``).

* ``mostpop``: rank items by train popularity (the same list for every user).
* ``ease``: Steck, H. Embarrassingly Shallow Autoencoders for Sparse Data. WWW 2019. Closed-form
  item-item model with L2 weight λ (``lam``; the paper uses 500 on ML-20M, not tuned here).
"""

from dataclasses import dataclass

from onebp.classic import EASE, MostPop
from onebp.registry import Method, register


@dataclass
class EASEParams:
    lam: float = 500.0


register(
    Method(
        name="mostpop",
        build=lambda ctx: MostPop(ctx.train),
        citation="(popularity ranking; no paper)",
        summary="most popular train items for everyone (non-neural floor)",
    )
)
register(
    Method(
        name="ease",
        build=lambda ctx: EASE(ctx.train, ctx.params["lam"]),
        params=EASEParams,
        citation="Steck. Embarrassingly Shallow Autoencoders for Sparse Data. WWW 2019.",
        summary="EASE closed-form item-item model (non-neural floor)",
        test_overrides={"lam": 10.0},
    )
)
