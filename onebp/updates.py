"""Update strategies: how one batch changes the two towers.

* ``Backprop`` (TwoBP): gradients flow into both towers; Adam (weight decay = l2) updates users and
  items.
* ``OneBP``: the user vectors are read without gradient and the user table is not in the optimizer
  (no gradient, no Adam state); Adam updates only the item tower. After each optimizer step, every
  batch row (u, i⁺) moves its user toward the *updated* positive item,
  ``e_u ← β·e_u + (1−β)·e_{i⁺}`` (``moving_aggregation``), or once per epoch from each user's train
  items (``aggregation="per_epoch"``, the paper's wording).

A user can occur several times in one batch. ``duplicate_users`` says what then happens:

* ``sequential`` (default, deterministic): as if the rows were applied one after another in batch
  order: with positives i_1 … i_k, ``e_u ← β^k·e_u + (1−β)·Σ_j β^(k−j)·e_{i_j}``;
* ``mean``: one step toward the mean positive, ``e_u ← β·e_u + (1−β)·mean_j e_{i_j}``;
* ``official``: what the official code does — every row computes ``β·e_u + (1−β)·e_{i_j}`` from the
  *old* e_u and only one write survives; we keep the last row's (deterministic here, racy there).

For a user that occurs once all three give exactly ``β·e_u + (1−β)·e_{i⁺}``.

Both strategies have a fused path for encoders whose vectors are plain table rows (MF) and losses
with ``value_and_grad``: the embedding gradients are written by hand with one gather, one bmm and
one ``index_add_`` per table, instead of building an autograd graph. Both strategies use it, so a
OneBP/TwoBP time comparison compares the update rules, not two implementations.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from onebp.interactions import UserItems

DuplicateUsers = Literal["sequential", "mean", "official"]
Aggregation = Literal["per_batch", "per_epoch"]


def make_adam(params: list[nn.Parameter], lr: float, l2: float) -> torch.optim.Adam:
    """Adam with L2 weight decay added to the gradient (torch's ``weight_decay``, as the official
    code), fused kernel where the build supports it."""
    try:
        return torch.optim.Adam(params, lr=lr, weight_decay=l2, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr, weight_decay=l2, foreach=True)


@torch.no_grad()
def moving_aggregation(
    user_table: torch.Tensor,
    users: torch.Tensor,
    targets: torch.Tensor,
    beta: float,
    duplicate_users: DuplicateUsers = "sequential",
) -> None:
    """In place: move ``user_table[users[b]]`` toward ``targets[b]`` for every batch row b."""
    if duplicate_users == "official":
        # Last writer wins: keep, per user, the row with the highest batch position.
        positions = torch.arange(len(users), device=users.device)
        last = torch.full((user_table.shape[0],), -1, dtype=torch.int64, device=users.device)
        last.scatter_reduce_(0, users, positions, reduce="amax")
        keep = last[users] == positions
        u = users[keep]
        user_table[u] = beta * user_table[u] + (1.0 - beta) * targets[keep]
        return
    uniq, inverse, counts = torch.unique(users, return_inverse=True, return_counts=True)
    acc = torch.zeros(len(uniq), user_table.shape[1], dtype=user_table.dtype, device=users.device)
    if duplicate_users == "mean":
        acc.index_add_(0, inverse, targets)
        acc *= ((1.0 - beta) / counts.to(user_table.dtype))[:, None]
        user_table[uniq] = beta * user_table[uniq] + acc
        return
    if duplicate_users != "sequential":
        raise ValueError(f"unknown duplicate_users {duplicate_users!r}")
    # rank of each row among its user's rows, in batch order (stable sort keeps batch order)
    sorted_inv, order = torch.sort(inverse, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(inverse)
    rank[order] = torch.arange(len(users), device=users.device) - starts[sorted_inv]
    beta_t = torch.tensor(beta, dtype=user_table.dtype, device=users.device)
    weight = (1.0 - beta) * beta_t.pow(counts[inverse] - 1 - rank)
    acc.index_add_(0, inverse, weight[:, None] * targets)
    user_table[uniq] = beta_t.pow(counts)[:, None] * user_table[uniq] + acc


@torch.no_grad()
def per_epoch_aggregation(user_table: torch.Tensor, item_rows: torch.Tensor, train: UserItems,
                          beta: float) -> None:
    """In place, once per epoch: ``e_u ← β·e_u + (1−β)·mean_{i ∈ train(u)} e_i`` (users with items)."""
    sums = torch.zeros_like(user_table)
    sums.index_add_(0, train.user_of_entry(), item_rows[train.indices])
    deg = train.degrees()
    has = deg > 0
    user_table[has] = beta * user_table[has] + (1.0 - beta) * sums[has] / deg[has, None].to(sums.dtype)


class _Strategy:
    """Shared batch step (fused or autograd); subclasses say which tower trains by gradient."""

    trains_users: bool

    def __init__(self, encoder: nn.Module, loss: Any, lr: float, l2: float, fused: bool) -> None:
        self.encoder = encoder
        self.loss = loss
        params = list(encoder.item_parameters())
        if self.trains_users:
            params += list(encoder.user_parameters())
        else:
            for p in encoder.user_parameters():
                p.requires_grad_(False)
        self.params = params
        self.optimizer = make_adam(params, lr, l2)
        self.fused = fused and getattr(encoder, "plain_tables", False) and hasattr(loss, "value_and_grad")

    def step(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor | None) -> torch.Tensor:
        """One forward/backward/optimizer step; returns the (detached) batch loss."""
        if self.fused and neg is not None:
            loss = self._fused_grads(users, pos, neg)
        else:
            loss = self._autograd_grads(users, pos, neg)
        self.optimizer.step()
        return loss

    @torch.no_grad()
    def _fused_grads(self, users, pos, neg) -> torch.Tensor:
        enc = self.encoder
        user_table, item_table = enc.user_table, enc.item_table
        u = user_table[users]
        items = torch.cat([pos[:, None], neg], dim=1)
        v = item_table[items]  # (B, 1+N, d)
        scores = torch.bmm(v, u[:, :, None]).squeeze(2)
        loss, g = self.loss.value_and_grad(scores)
        d = item_table.shape[1]
        if item_table.grad is None:
            item_table.grad = torch.zeros_like(item_table)
        else:
            item_table.grad.zero_()
        item_table.grad.index_add_(0, items.reshape(-1), (g[:, :, None] * u[:, None, :]).reshape(-1, d))
        if self.trains_users:
            if user_table.grad is None:
                user_table.grad = torch.zeros_like(user_table)
            else:
                user_table.grad.zero_()
            user_table.grad.index_add_(0, users, torch.bmm(g[:, None, :], v).squeeze(1))
        return loss

    def _autograd_grads(self, users, pos, neg) -> torch.Tensor:
        enc = self.encoder
        self.optimizer.zero_grad(set_to_none=True)
        enc.begin_batch()
        u = enc.user_vectors(users)
        if not self.trains_users:
            u = u.detach()
        p = enc.item_vectors(pos)
        n = enc.item_vectors(neg) if neg is not None else None
        loss = self.loss(u, p, n)
        loss.backward()
        return loss.detach()

    def after_step(self, users: torch.Tensor, pos: torch.Tensor) -> None:
        """Work after the optimizer step (OneBP's aggregation); timed separately by the trainer."""

    def end_epoch(self, train: UserItems) -> None:
        """Work once per epoch (OneBP's per-epoch aggregation)."""

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])


class Backprop(_Strategy):
    """TwoBP: both towers trained by gradient."""

    trains_users = True


class OneBP(_Strategy):
    """One backpropagation: items by gradient, users by moving aggregation (module docstring)."""

    trains_users = False

    def __init__(self, encoder: nn.Module, loss: Any, lr: float, l2: float, fused: bool,
                 beta: float, aggregation: Aggregation = "per_batch",
                 duplicate_users: DuplicateUsers = "sequential") -> None:
        super().__init__(encoder, loss, lr, l2, fused)
        if aggregation not in ("per_batch", "per_epoch"):
            raise ValueError(f"unknown aggregation {aggregation!r}")
        self.beta, self.aggregation, self.duplicate_users = beta, aggregation, duplicate_users

    def after_step(self, users: torch.Tensor, pos: torch.Tensor) -> None:
        if self.aggregation == "per_batch":
            enc = self.encoder
            moving_aggregation(enc.user_table.data, users, enc.item_table.data[pos], self.beta,
                               self.duplicate_users)

    def end_epoch(self, train: UserItems) -> None:
        if self.aggregation == "per_epoch":
            enc = self.encoder
            per_epoch_aggregation(enc.user_table.data, enc.item_table.data, train, self.beta)

