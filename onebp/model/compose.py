"""``compose()``: a two-tower model from the four modules (encoder, sampler, loss, update), with the
shared settings of a run; ``make_encoder()``: the shared encoders by name. Every method's ``build``
(OneBP, TwoBP, the baselines) goes through here."""

from __future__ import annotations

from typing import Any

from torch import nn

from onebp.model.contracts import Loss, NegativeSampler, UpdateStrategy
from onebp.model.encoders import MF, LightGCN
from onebp.model.losses import InfoNCE
from onebp.model.samplers import InBatchNegatives, UniformNegatives
from onebp.model.two_tower import BuildContext, TwoTowerModel
from onebp.model.updates import Backprop, OneBP


def make_encoder(ctx: BuildContext, name: str, **kwargs: Any) -> nn.Module:
    """A shared encoder by name: ``"mf"`` or ``"lightgcn"`` (``n_layers=``), dim from the config."""
    cfg = ctx.config
    if name == "mf":
        return MF(ctx.n_users, ctx.n_items, cfg.dim, ctx.generator, ctx.device)
    if name == "lightgcn":
        return LightGCN(ctx.n_users, ctx.n_items, cfg.dim, ctx.generator, ctx.device, ctx.graph, **kwargs)
    raise ValueError(f"unknown encoder {name!r}: expected mf or lightgcn (or pass a module)")


def compose(
    ctx: BuildContext,
    encoder: str | nn.Module = "mf",
    loss: Loss | None = None,
    update: str = "backprop",
    sampler: str | NegativeSampler = "uniform",
    score: str = "dot",
    batch_l2: float = 0.0,
    **encoder_kwargs: Any,
) -> TwoTowerModel:
    """A two-tower model from the four modules, with the shared settings of ``ctx.config``.

    * ``encoder``: a name for :func:`make_encoder` or a built module (user table + item tower);
    * ``loss``: a loss object (``onebp.model.losses``; ``onebp.model.contracts.Loss``); default
      InfoNCE(temperature);
    * ``update``: ``"backprop"`` (TwoBP) or ``"onebp"`` (beta, aggregation, duplicate_users);
    * ``sampler``: ``"uniform"`` (n_negatives per row; ``"inbatch"`` when n_negatives is 0),
      ``"inbatch"`` (no sampled negatives) or a sampler object (``contracts.NegativeSampler``);
    * ``score``: ``"dot"`` or ``"cosine"`` ranking; ``batch_l2``: LightGCN-style penalty on the
      batch's raw embeddings (added to the loss; turns the fused path off).
    """
    cfg = ctx.config
    if isinstance(encoder, str):
        encoder = make_encoder(ctx, encoder, **encoder_kwargs)
    if sampler == "uniform" and cfg.n_negatives == 0:
        sampler = "inbatch"
    if sampler == "uniform":
        sampler = UniformNegatives(ctx.train, cfg.n_negatives, replace=cfg.negatives_replace)
    elif sampler == "inbatch":
        sampler = InBatchNegatives()
    elif isinstance(sampler, str):
        raise ValueError(f"unknown sampler {sampler!r}: expected uniform or inbatch (or pass a sampler)")
    if loss is None:
        loss = InfoNCE(cfg.temperature)
    strategy: UpdateStrategy
    if update == "onebp":
        strategy = OneBP(encoder, loss, cfg.lr, cfg.l2, cfg.fused, cfg.batch_size, beta=cfg.beta,
                         aggregation=cfg.aggregation, duplicate_users=cfg.duplicate_users,
                         batch_l2=batch_l2)
    elif update == "backprop":
        strategy = Backprop(encoder, loss, cfg.lr, cfg.l2, cfg.fused, cfg.batch_size, batch_l2=batch_l2)
    else:
        raise ValueError(f"unknown update {update!r}: expected backprop or onebp")
    return TwoTowerModel(encoder, sampler, strategy, score=score)
