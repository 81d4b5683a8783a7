"""OneBP's user update: the moving aggregation, its ablations, and users repeated in a batch.

Users never get a gradient under OneBP (``onebp.model.updates.OneBP``); after each optimizer step,
every batch row (u, i⁺) moves its user toward the *updated* positive item,
``e_u ← β·e_u + (1−β)·e_{i⁺}`` (``moving_aggregation``). ``aggregation`` selects this update or one
of the ablations that isolate it (users never get a gradient in any of them; only how the user
table changes differs):

* ``per_batch`` (OneBP): after every optimizer step, as above;
* ``per_epoch``: once per epoch, ``e_u ← β·e_u + (1−β)·m_u`` with ``m_u`` the mean of u's train items
  (one β step per *epoch*, so a user moves about deg(u) times slower than under ``per_batch``);
* ``per_epoch_matched``: once per epoch with the step matched to ``per_batch``,
  ``e_u ← β^deg(u)·e_u + (1−β^deg(u))·m_u``. This is exactly what ``per_batch`` (sequential) does
  to a user whose deg(u) train rows all come with the same target m_u, i.e. deg(u) β-steps per epoch
  toward the mean of its items, only computed once from the items at the end of the epoch. The two
  then differ only in *when* the items are read (end of epoch vs right after each step) and in the
  order of the targets — the timing question the ablation asks;
* ``item_mean`` (no memory): ``e_u ← m_u`` at the end of every epoch (``per_epoch`` with β = 0);
* ``none`` (the control): users stay at their initial values (stop-gradient, no aggregation);
  only the item tower learns.

A user can occur several times in one batch. ``duplicate_users`` says what then happens:

* ``sequential`` (default, deterministic): as if the rows were applied one after another in batch
  order: with positives i_1 … i_k, ``e_u ← β^k·e_u + (1−β)·Σ_j β^(k−j)·e_{i_j}``;
* ``mean``: one step toward the mean positive, ``e_u ← β·e_u + (1−β)·mean_j e_{i_j}``;
* ``official``: what the official code does — every row computes ``β·e_u + (1−β)·e_{i_j}`` from the
  *old* e_u and only one write survives; we keep the last row's (deterministic here, racy there).

For a user that occurs once all three give exactly ``β·e_u + (1−β)·e_{i⁺}``.

The three modes differ only in two numbers per batch row / per (batch, user) — a row weight and a
user scale — so an epoch's whole ``AggregationPlan`` is computed at once from the shuffled users
(one sort), and each batch then costs one gather/scale/scatter and one ``index_add_``.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Literal

import torch

from onebp.model.interactions import UserItems

DuplicateUsers = Literal["sequential", "mean", "official"]
Aggregation = Literal["per_batch", "per_epoch", "per_epoch_matched", "item_mean", "none"]
AGGREGATIONS: tuple[str, ...] = typing.get_args(Aggregation)


@dataclass
class AggregationPlan:
    """Moving-aggregation coefficients for every batch of an epoch (see module docstring).

    Batch b covers rows ``[b·B, (b+1)·B)``; its distinct users are ``users[offsets[b]:offsets[b+1]]``
    with factors ``scale[...]``; row r adds ``weight[r]·target_r`` to its user afterwards.
    """

    batch_size: int
    users: torch.Tensor  # distinct users per batch, concatenated
    scale: torch.Tensor  # per entry of `users`
    weight: torch.Tensor  # per row
    offsets: list[int]  # on the host: one sync per epoch, none per batch

    def apply(self, b: int, user_table: torch.Tensor, row_users: torch.Tensor,
              targets: torch.Tensor) -> None:
        """In place, batch ``b``: ``e_u ← scale_u·e_u + Σ_rows weight_r·target_r``."""
        lo, hi = self.offsets[b], self.offsets[b + 1]
        u = self.users[lo:hi]
        user_table.index_copy_(0, u, user_table.index_select(0, u) * self.scale[lo:hi, None])
        rows = slice(b * self.batch_size, b * self.batch_size + len(row_users))
        user_table.index_add_(0, row_users, targets * self.weight[rows, None])


def aggregation_plan(users: torch.Tensor, batch_size: int, n_users: int, beta: float,
                     duplicate_users: DuplicateUsers = "sequential") -> AggregationPlan:
    """Coefficients for all batches of ``users`` (the epoch's rows in batch order)."""
    if duplicate_users not in ("sequential", "mean", "official"):
        raise ValueError(f"unknown duplicate_users {duplicate_users!r}")
    device, n = users.device, len(users)
    batch = torch.arange(n, device=device) // batch_size
    keys, order = torch.sort(batch * n_users + users, stable=True)  # stable: batch order kept
    is_new = torch.ones(n, dtype=torch.bool, device=device)
    is_new[1:] = keys[1:] != keys[:-1]
    group = torch.cumsum(is_new, 0) - 1
    starts = is_new.nonzero().squeeze(1)
    counts = torch.diff(starts, append=torch.tensor([n], device=device))
    # back from sorted to batch order (index_copy_: several times faster than rank[order] = ...)
    sorted_rank = torch.arange(n, device=device) - starts.index_select(0, group)
    rank = torch.empty_like(users).index_copy_(0, order, sorted_rank)
    count = torch.empty_like(users).index_copy_(0, order, counts.index_select(0, group))
    beta_t = torch.tensor(beta, dtype=torch.float32, device=device)
    # (1 - beta) in double, then float32: the same number `beta*e_u + (1-beta)*e_i` uses.
    if duplicate_users == "sequential":
        # beta^k from a small table (k <= the largest count) instead of a pow per row
        powers = beta_t.pow(torch.arange(int(counts.max()) + 1, device=device))
        scale = powers.index_select(0, counts)
        weight = (1.0 - beta) * powers.index_select(0, count - 1 - rank)
    elif duplicate_users == "mean":
        scale = beta_t.expand(len(counts)).clone()
        weight = (1.0 - beta) / count.to(torch.float32)
    else:  # official: every row starts from the old e_u, the last row's write survives
        scale = beta_t.expand(len(counts)).clone()
        weight = torch.where(rank == count - 1, 1.0 - beta, 0.0).to(torch.float32)
    group_keys = keys.index_select(0, starts)
    group_batch = group_keys // n_users
    n_batches = -(-n // batch_size)
    offsets = torch.searchsorted(group_batch, torch.arange(n_batches + 1, device=device))
    return AggregationPlan(batch_size, group_keys % n_users, scale, weight, offsets.tolist())


@torch.no_grad()
def moving_aggregation(
    user_table: torch.Tensor,
    users: torch.Tensor,
    targets: torch.Tensor,
    beta: float,
    duplicate_users: DuplicateUsers = "sequential",
) -> None:
    """In place: move ``user_table[users[r]]`` toward ``targets[r]`` for every row r of one batch."""
    plan = aggregation_plan(users, len(users), user_table.shape[0], beta, duplicate_users)
    plan.apply(0, user_table, users, targets.to(user_table.dtype))


@torch.no_grad()
def per_epoch_aggregation(user_table: torch.Tensor, item_rows: torch.Tensor, train: UserItems,
                          beta: float, matched: bool = False) -> None:
    """In place, once per epoch, for users with train items, ``m_u`` the mean of their items' rows:
    ``e_u ← β·e_u + (1−β)·m_u``, or with ``matched`` ``e_u ← β^deg(u)·e_u + (1−β^deg(u))·m_u``
    (deg(u) β-steps toward ``m_u``: the step size of ``per_batch``; module docstring)."""
    sums = torch.zeros_like(user_table)
    sums.index_add_(0, train.user_of_entry(), item_rows.index_select(0, train.indices))
    deg = train.degrees()
    has = deg > 0
    mean = sums[has] / deg[has, None].to(sums.dtype)
    if matched:
        keep = torch.tensor(beta, dtype=torch.float64, device=deg.device).pow(deg[has])[:, None]
        keep = keep.to(user_table.dtype)
    else:
        keep = torch.tensor(beta, dtype=user_table.dtype, device=user_table.device)
    user_table[has] = keep * user_table[has] + (1.0 - keep) * mean


@torch.no_grad()
def item_mean_users(user_table: torch.Tensor, item_rows: torch.Tensor, train: UserItems) -> None:
    """In place: ``e_u ← mean_{i ∈ train(u)} e_i`` for users with train items (no memory)."""
    sums = torch.zeros_like(user_table)
    sums.index_add_(0, train.user_of_entry(), item_rows.index_select(0, train.indices))
    deg = train.degrees()
    has = deg > 0
    user_table[has] = sums[has] / deg[has, None].to(sums.dtype)

