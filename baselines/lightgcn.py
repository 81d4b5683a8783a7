"""``lightgcn``: LightGCN with BPR, three propagation layers.

He, X., Deng, K., Wang, X., Li, Y., Zhang, Y. and Wang, M. LightGCN: Simplifying and Powering Graph
Convolution Network for Recommendation. SIGIR 2020.

As in the paper and its official code: symmetric normalisation ``D^-1/2 A D^-1/2`` of the bipartite
train graph (no self loops), K = 3 layers, final vector = mean of layers 0…K (α_k = 1/(K+1)), BPR
with one uniform negative, Adam lr 1e-3 *without* weight decay and instead the L2 penalty
``1e-4 · ½(‖e⁰_u‖² + ‖e⁰_i⁺‖² + ‖e⁰_i⁻‖²)/B`` on the batch's layer-0 embeddings
(``ego_l2``; ``l2`` = Adam weight decay is 0), batch 2048, tables initialised N(0, 0.1²)
(``init_std``; the official PyTorch code's choice over Xavier). The original draws each epoch's
n_train (user, positive) pairs by sampling users uniformly; we make one pass over the train
interactions per epoch (as for every method here). Paper dim 64; on ML-100K we use the OneBP
paper's 32 so that all methods compare at one size.
"""

from dataclasses import dataclass

from onebp.methods.registry import Method, register
from onebp.methods.search_space import LEARNING_RATE, IntRange, LogUniform
from onebp.model.compose import compose
from onebp.model.losses import BPR


@dataclass
class LightGCNParams:
    n_layers: int = 3
    ego_l2: float = 1e-4
    init_std: float = 0.1  # N(0, init_std²) tables, as gusye1234/LightGCN-PyTorch


def build(ctx):
    p = ctx.params
    return compose(ctx, "lightgcn", BPR(), "backprop", batch_l2=p["ego_l2"], n_layers=p["n_layers"],
                   init_std=p["init_std"])


register(
    Method(
        name="lightgcn",
        build=build,
        params=LightGCNParams,
        defaults={"*": {"n_negatives": 1, "lr": 1e-3, "l2": 0.0, "batch_size": 2048, "dim": 64},
                  # ML-1M: LightGCN's paper has no ML-1M setting; the OneBP paper's ML-1M size.
                  "ml-100k": {"dim": 32}, "ml-100k-onebp": {"dim": 32}, "ml-1m-onebp": {"dim": 128}},
        citation="He et al. LightGCN: Simplifying and Powering Graph Convolution Network for "
                 "Recommendation. SIGIR 2020.",
        summary="LightGCN (3 layers, mean combination) + BPR; both towers by backprop",
        test_overrides={"lr": 0.02, "batch_size": 256},
        # The paper tunes the layer-0 penalty (1e-6 … 1e-2) and the depth (1 … 4); Adam weight
        # decay stays 0 as in the official code (the penalty replaces it).
        search_space={"lr": LEARNING_RATE, "ego_l2": LogUniform(1e-6, 1e-2), "n_layers": IntRange(1, 4)},
    )
)
