"""``mostpop``: rank items by train popularity, the same list for every user (a non-neural floor).

Fitted in one shot by ``onebp.methods.one_shot.MostPop``; deterministic, so it has no seeds to vary.
"""

from onebp.methods.one_shot import MostPop
from onebp.methods.registry import Method, register

register(
    Method(
        name="mostpop",
        build=lambda ctx: MostPop(ctx.train),
        citation="(popularity ranking; no paper)",
        summary="most popular train items for everyone (non-neural floor)",
    )
)
