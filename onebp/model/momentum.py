"""BUIR's momentum target: a target encoder that follows the online one by an exponential moving
average instead of by gradient (the online encoder trains by backprop, ``onebp.model.updates``)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from onebp.model.updates import Backprop


@torch.no_grad()
def momentum_update(target: list[torch.Tensor], online: list[torch.Tensor], tau: float) -> None:
    """In place: ``ξ ← τ·ξ + (1−τ)·θ`` for every (target, online) pair (BYOL/BUIR's target network)."""
    for t, p in zip(target, online, strict=True):
        t.mul_(tau).add_(p.detach(), alpha=1.0 - tau)


class MomentumTarget(Backprop):
    """An ``UpdateStrategy`` (``onebp.model.contracts``) for BUIR (Lee et al., SIGIR 2021): online
    encoder + predictor trained by gradient, a target encoder that follows the online one by
    momentum (``momentum_update`` after every optimizer step), no negatives.

    The encoder provides ``online_parameters()``, ``target_parameters()`` (aligned lists),
    ``user_table``/``item_table`` (online), ``target_user``/``target_item`` and ``predictor``; the
    loss (``onebp.model.losses.BootstrapLoss``) gets ``(q(u_online), u_target, q(i_online), i_target)``.
    Like OneBP's user update, the target moves toward the online vectors by an exponential
    moving average instead of by gradient.
    """

    loss: Any  # BootstrapLoss: four arguments, not a contracts.Loss (the autograd step below calls it)

    def __init__(self, encoder: nn.Module, loss: Any, lr: float, l2: float, batch_size: int,
                 tau: float) -> None:
        super().__init__(encoder, loss, lr, l2, False, batch_size)
        self.tau = tau

    def _autograd_grads(self, users, pos, neg) -> torch.Tensor:
        enc = self.encoder
        self.optimizer.zero_grad(set_to_none=True)
        q = enc.predictor
        loss = self.loss(q(enc.user_table[users]), enc.target_user[users],
                         q(enc.item_table[pos]), enc.target_item[pos])
        loss.backward()
        return loss.detach()

    def after_step(self, b: int) -> None:
        momentum_update(self.encoder.target_parameters(), self.encoder.online_parameters(), self.tau)
