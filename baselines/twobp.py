"""``twobp``: the exact two-backprop twin of OneBP.

Same encoder (MF, Xavier-normal), sampler (N uniform negatives), loss (InfoNCE) and settings as
``onebp`` — built by the same function — but both towers are trained by backpropagation with Adam.
Per-dataset defaults are OneBP's official ones, so the two differ only in the update rule.
Cited: Chen & Wang, One Backpropagation in Two Tower Recommendation Models (2024).
"""

from onebp.methods import CITATION, PAPER_DEFAULTS, TWOBP_SPACE, build_mf_infonce
from onebp.registry import Method, register

register(
    Method(
        name="twobp",
        build=lambda ctx: build_mf_infonce(ctx, "backprop"),
        defaults=PAPER_DEFAULTS,
        citation=CITATION,
        summary="MF + InfoNCE; both towers by backprop (OneBP's TwoBP twin)",
        search_space=TWOBP_SPACE,  # OneBP's minus β: the twins are tuned over the same settings
    )
)
