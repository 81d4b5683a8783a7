"""``bpr-mf``: matrix factorisation trained with BPR.

Rendle, S., Freudenthaler, C., Gantner, Z. and Schmidt-Thieme, L. BPR: Bayesian Personalized Ranking
from Implicit Feedback. UAI 2009.

One uniformly sampled negative per interaction, ``softplus(s⁻ − s⁺)``, both towers by backprop.
The paper learns by SGD with per-row L2 (λ); like most modern re-implementations (e.g. the LightGCN
paper's MF baseline) we use Adam (lr 1e-3) with weight decay, and the fused MF path (exact for BPR).
"""

from onebp.losses import BPR
from onebp.methods import compose
from onebp.registry import Method, register
from onebp.search_space import LEARNING_RATE, WEIGHT_DECAY

register(
    Method(
        name="bpr-mf",
        build=lambda ctx: compose(ctx, "mf", BPR(), "backprop"),
        defaults={"*": {"n_negatives": 1, "lr": 1e-3, "l2": 1e-5, "batch_size": 1024},
                  "ml-100k": {"dim": 32}, "ml-100k-onebp": {"dim": 32}},
        citation="Rendle et al. BPR: Bayesian Personalized Ranking from Implicit Feedback. UAI 2009.",
        summary="MF + BPR (1 uniform negative); both towers by backprop",
        test_overrides={"lr": 0.02, "l2": 0.0},
        search_space={"lr": LEARNING_RATE, "l2": WEIGHT_DECAY},
    )
)
