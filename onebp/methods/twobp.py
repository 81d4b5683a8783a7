"""``twobp``: the exact two-backprop twin of OneBP.

Same encoder (MF, Xavier-normal), sampler (N uniform negatives), loss (InfoNCE) and settings as
``onebp`` — built by the same function — but both towers are trained by backpropagation with Adam.
Per-dataset defaults are OneBP's official ones less β (a OneBP-update setting, refused here), so the
two differ only in the update rule.
Cited: Chen & Wang, One Backpropagation in Two Tower Recommendation Models (2024). A core method,
beside OneBP (``onebp.methods.registry`` registers both), not a discovered baseline.
"""

from onebp.methods.onebp import CITATION, PAPER_DEFAULTS, TWOBP_SPACE, build_mf_infonce
from onebp.methods.spec import Method

#: OneBP's official settings less β, which only a OneBP update reads (``onebp.config`` refuses it here)
TWOBP_DEFAULTS = {ds: {k: v for k, v in d.items() if k != "beta"} for ds, d in PAPER_DEFAULTS.items()}

TWOBP = Method(
    name="twobp",
    build=lambda ctx: build_mf_infonce(ctx, "backprop"),
    defaults=TWOBP_DEFAULTS,
    citation=CITATION,
    summary="MF + InfoNCE; both towers by backprop (OneBP's TwoBP twin)",
    module=__name__,
    search_space=TWOBP_SPACE,  # OneBP's minus β: the twins are tuned over the same settings
)
