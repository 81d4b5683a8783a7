"""``directau``: MF trained by alignment and uniformity, no negatives.

Wang, C., Yu, Y., Ma, W., Zhang, M., Chen, C., Liu, Y. and Ma, S. Towards Representation Alignment
and Uniformity in Collaborative Filtering. KDD 2022.

Loss ``align + γ·(uniform(users) + uniform(items))/2`` on L2-normalised batch vectors
(``onebp.model.losses.DirectAU``), in-batch only (n_negatives = 0), Adam lr 1e-3, weight decay 1e-6,
batch 256 (the official settings; γ is tuned per dataset in the paper from {0.2 … 10}: we use 1,
the repository default, and the official commands' γ for Gowalla and Yelp2018).
Ranking uses the raw dot product, as the official ``full_sort_predict``.
"""

from dataclasses import dataclass
from typing import Literal

from onebp.methods.registry import Method, register
from onebp.methods.search_space import LEARNING_RATE, WEIGHT_DECAY, LogUniform
from onebp.model.compose import compose
from onebp.model.losses import DirectAU

#: ML-100K: the best on validation NDCG@20 of the official grid (γ {0.2, 0.5, 1, 2} × weight decay
#: {1e-4, 1e-6, 0} at γ 0.5) plus weight decay 1e-3 (γ 0.5: 0.1625; 1e-4: 0.1611; 1e-6: 0.113;
#: 0: 0.096; γ 1 / 2 / 0.2 at 1e-4: 0.130 / 0.104 / 0.125). Still below BPR-MF there (0.224):
#: baselines/README.md, "DirectAU on ML-100K", shows why.
ML100K = {"dim": 32, "gamma": 0.5, "l2": 1e-3}


@dataclass
class DirectAUParams:
    gamma: float = 1.0
    score: Literal["dot", "cosine"] = "dot"  # the official code ranks by the raw dot product


register(
    Method(
        name="directau",
        build=lambda ctx: compose(ctx, "mf", DirectAU(ctx.params["gamma"]), "backprop", sampler="inbatch",
                                  score=ctx.params["score"]),
        params=DirectAUParams,
        defaults={"*": {"n_negatives": 0, "lr": 1e-3, "l2": 1e-6, "batch_size": 256, "dim": 64},
                  # the official README's commands for its Gowalla and Yelp2018 runs
                  "gowalla": {"gamma": 5.0, "batch_size": 1024},
                  "yelp2018": {"gamma": 1.0, "batch_size": 1024},
                  "ml-100k": ML100K, "ml-100k-onebp": ML100K},
        citation="Wang et al. Towards Representation Alignment and Uniformity in Collaborative "
                 "Filtering. KDD 2022.",
        summary="MF + DirectAU (alignment + γ·uniformity, in-batch); both towers by backprop",
        test_overrides={"lr": 0.01, "batch_size": 128},
        # γ over the paper's range (0.05 … 10) and its weight-decay grid {0, 1e-8 … 1e-4} ⊂ WEIGHT_DECAY
        search_space={"lr": LEARNING_RATE, "l2": WEIGHT_DECAY, "gamma": LogUniform(0.05, 10.0)},
    )
)
