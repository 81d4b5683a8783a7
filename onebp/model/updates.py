"""Update strategies: how one batch changes the two towers.

* ``Backprop`` (TwoBP): gradients flow into both towers; Adam (weight decay = l2) updates users and
  items.
* ``OneBP``: the user vectors are read without gradient and the user table is not in the optimizer
  (no gradient, no Adam state); Adam updates only the item tower. After each optimizer step, every
  batch row (u, i⁺) moves its user toward the *updated* positive item,
  ``e_u ← β·e_u + (1−β)·e_{i⁺}`` (``moving_aggregation``), or once per epoch from each user's train
  items (``aggregation="per_epoch"``, the paper's wording).

``aggregation`` picks OneBP's user update or one of the ablations that isolate it, and
``duplicate_users`` what happens to a user that occurs several times in one batch; both are
described, and computed, in ``onebp.model.aggregation``. Adam and its fast step live in
``onebp.model.optimizer``; BUIR's momentum target in ``onebp.model.momentum``.

Both strategies satisfy ``onebp.model.contracts.UpdateStrategy``. They have a fused path for
encoders whose vectors are plain table rows (MF) and losses with ``value_and_grad``
(``contracts.ScoresLoss``): the embedding gradients are written by hand (gather, multiply, reduce,
``index_add_``) instead of building an autograd graph. Both strategies use it, so a OneBP/TwoBP
time comparison compares the update rules, not two implementations. Scores use the layout
(1+N, B) — row 0 the positives — because reductions over a contiguous batch vectorise on CPU.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from onebp.model.aggregation import (
    AGGREGATIONS,
    Aggregation,
    DuplicateUsers,
    aggregation_plan,
    item_mean_users,
    per_epoch_aggregation,
)
from onebp.model.contracts import AllItemsLoss, Loss, ScoresLoss, UpdateStrategy
from onebp.model.interactions import UserItems
from onebp.model.optimizer import adam_step, make_adam

#: largest (batch × items) score matrix the autograd path builds for losses with ``with_all_items``
FULL_SCORES_LIMIT = 1 << 25


class _Strategy(UpdateStrategy):
    """Shared batch step (fused or autograd); subclasses say which tower trains by gradient.

    The calls per epoch are ``UpdateStrategy``'s (``onebp.model.contracts``); ``after_step`` and
    ``end_epoch`` are its no-op hooks unless a subclass overrides them.
    """

    trains_users: bool

    def __init__(self, encoder: nn.Module, loss: Loss, lr: float, l2: float, fused: bool,
                 batch_size: int, batch_l2: float = 0.0) -> None:
        self.encoder = encoder
        self.loss = loss
        self.batch_size = batch_size
        self.batch_l2 = batch_l2
        params = list(encoder.item_parameters())
        if self.trains_users:
            params += list(encoder.user_parameters())
        else:
            for p in encoder.user_parameters():
                p.requires_grad_(False)
        self.params = params
        self.optimizer = make_adam(params, lr, l2)
        # the loss's optional capabilities (contracts.ScoresLoss, AllItemsLoss), read once
        self.fused = fused and getattr(encoder, "plain_tables", False) and isinstance(loss, ScoresLoss)
        self.all_items = isinstance(loss, AllItemsLoss)

    def begin_epoch(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor | None) -> None:
        self.users, self.pos, self.neg = users, pos, neg
        # (1+N, n): row 0 the positives; a batch's item ids are one strided slice of it
        self.items_t = torch.cat([pos[None], neg.T]) if self.fused and neg is not None else None

    def batch(self, b: int) -> slice:
        return slice(b * self.batch_size, (b + 1) * self.batch_size)

    def step(self, b: int) -> torch.Tensor:
        """One forward/backward/optimizer step on batch b; returns the (detached) batch loss."""
        sl = self.batch(b)
        if self.items_t is not None:
            loss = self._fused_grads(self.users[sl], self.items_t[:, sl])
        else:
            neg = self.neg[sl] if self.neg is not None else None
            loss = self._autograd_grads(self.users[sl], self.pos[sl], neg)
        adam_step(self.optimizer)
        return loss

    @torch.no_grad()
    def _fused_grads(self, users: torch.Tensor, items_t: torch.Tensor) -> torch.Tensor:
        user_table, item_table = self.encoder.user_table, self.encoder.item_table
        d = item_table.shape[1]
        u = user_table.index_select(0, users)  # (B, d)
        flat = items_t.reshape(-1)
        v = item_table.index_select(0, flat).view(*items_t.shape, d)  # (1+N, B, d)
        # the fused path is only taken for a ScoresLoss (``self.fused``, checked in __init__)
        loss, g = cast(ScoresLoss, self.loss).value_and_grad((v * u).sum(2))
        item_grad = (g[:, :, None] * u).view(-1, d)
        if self.batch_l2:
            # ``ego_penalty`` by hand: each occurrence of a row in the batch adds batch_l2·row/B
            c = self.batch_l2 / len(users)
            item_grad = item_grad.add(v.view(-1, d), alpha=c)
            penalty = v.pow(2).sum() + (u.pow(2).sum() if self.trains_users else 0.0)
            loss = loss + 0.5 * c * penalty
        _set_grad(item_table, flat, item_grad)
        if self.trains_users:
            user_grad = (g[:, :, None] * v).sum(0)
            if self.batch_l2:
                user_grad = user_grad.add(u, alpha=c)
            _set_grad(user_table, users, user_grad)
        return loss

    def _autograd_grads(self, users, pos, neg) -> torch.Tensor:
        enc = self.encoder
        self.optimizer.zero_grad(set_to_none=True)
        enc.begin_batch()
        u = enc.user_vectors(users)
        if not self.trains_users:
            u = u.detach()
        p = enc.item_vectors(pos)
        n_items = self.encoder.item_table.shape[0]
        if neg is not None and self.all_items and len(users) * n_items <= FULL_SCORES_LIMIT:
            # Many negatives over a small catalogue: one (B, |I|) product and a gather are cheaper
            # than gathering (B, N, d) negative vectors (same loss value and gradients).
            all_items = enc.item_vectors(torch.arange(n_items, device=neg.device))
            loss = cast(AllItemsLoss, self.loss).with_all_items(u, p, all_items, neg)
        else:
            n = enc.item_vectors(neg) if neg is not None else None
            loss = self.loss(u, p, n)
        if self.batch_l2:
            loss = loss + self.batch_l2 * self.ego_penalty(users, pos, neg)
        loss.backward()
        return loss.detach()

    def ego_penalty(self, users, pos, neg) -> torch.Tensor:
        """LightGCN's regulariser: ``½(‖e⁰_u‖² + ‖e⁰_i⁺‖² + ‖e⁰_i⁻‖²) / B`` over the batch's rows of the
        raw (layer-0) tables; the trained towers only (a OneBP user table is a constant here)."""
        enc = self.encoder
        total = enc.item_table[pos].pow(2).sum()
        if neg is not None:
            total = total + enc.item_table[neg].pow(2).sum()
        if self.trains_users:
            total = total + enc.user_table[users].pow(2).sum()
        return 0.5 * total / len(users)

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])


def _set_grad(table: torch.Tensor, index: torch.Tensor, rows: torch.Tensor) -> None:
    """``table.grad`` = zeros with ``rows`` summed in at ``index`` (a dense gradient, like autograd's
    for an indexed table, so Adam sees exactly what it would see without the fused path)."""
    if table.grad is None:
        table.grad = torch.zeros_like(table)
    else:
        table.grad.zero_()
    table.grad.index_add_(0, index, rows)


class Backprop(_Strategy):
    """TwoBP: both towers trained by gradient."""

    trains_users = True


class OneBP(_Strategy):
    """One backpropagation: items by gradient, users by moving aggregation (module docstring)."""

    trains_users = False

    def __init__(self, encoder: nn.Module, loss: Loss, lr: float, l2: float, fused: bool,
                 batch_size: int, beta: float, aggregation: Aggregation = "per_batch",
                 duplicate_users: DuplicateUsers = "sequential", batch_l2: float = 0.0) -> None:
        super().__init__(encoder, loss, lr, l2, fused, batch_size, batch_l2=batch_l2)
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"unknown aggregation {aggregation!r}: expected one of {', '.join(AGGREGATIONS)}")
        self.beta, self.aggregation, self.duplicate_users = beta, aggregation, duplicate_users

    def begin_epoch(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor | None) -> None:
        super().begin_epoch(users, pos, neg)
        if self.aggregation == "per_batch":
            self.plan = aggregation_plan(users, self.batch_size, self.encoder.user_table.shape[0],
                                         self.beta, self.duplicate_users)

    @torch.no_grad()
    def after_step(self, b: int) -> None:
        if self.aggregation == "per_batch":
            sl = self.batch(b)
            enc = self.encoder
            targets = enc.item_table.detach().index_select(0, self.pos[sl])
            self.plan.apply(b, enc.user_table.data, self.users[sl], targets)

    def end_epoch(self, train: UserItems) -> None:
        enc = self.encoder
        if self.aggregation in ("per_epoch", "per_epoch_matched"):
            per_epoch_aggregation(enc.user_table.data, enc.item_table.data, train, self.beta,
                                  matched=self.aggregation == "per_epoch_matched")
        elif self.aggregation == "item_mean":
            item_mean_users(enc.user_table.data, enc.item_table.data, train)
        # "none": the users keep their initial rows (the control)

