"""Update strategies: how one batch changes the two towers.

* ``Backprop`` (TwoBP): gradients flow into both towers; Adam (weight decay = l2) updates users and
  items.
* ``OneBP``: the user vectors are read without gradient and the user table is not in the optimizer
  (no gradient, no Adam state); Adam updates only the item tower. After each optimizer step, every
  batch row (u, i⁺) moves its user toward the *updated* positive item,
  ``e_u ← β·e_u + (1−β)·e_{i⁺}`` (``moving_aggregation``), or once per epoch from each user's train
  items (``aggregation="per_epoch"``, the paper's wording).

``aggregation`` also selects the ablations that isolate the moving aggregation (users never get a
gradient in any of them; only how the user table changes differs):

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

Both strategies have a fused path for encoders whose vectors are plain table rows (MF) and losses
with ``value_and_grad``: the embedding gradients are written by hand (gather, multiply, reduce,
``index_add_``) instead of building an autograd graph. Both strategies use it, so a OneBP/TwoBP
time comparison compares the update rules, not two implementations. Scores use the layout
(1+N, B) — row 0 the positives — because reductions over a contiguous batch vectorise on CPU.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from onebp.model.interactions import UserItems

#: largest (batch × items) score matrix the autograd path builds for losses with ``with_all_items``
FULL_SCORES_LIMIT = 1 << 25

DuplicateUsers = Literal["sequential", "mean", "official"]
Aggregation = Literal["per_batch", "per_epoch", "per_epoch_matched", "item_mean", "none"]
AGGREGATIONS: tuple[str, ...] = typing.get_args(Aggregation)


def make_adam(params: list[nn.Parameter], lr: float, l2: float) -> torch.optim.Adam:
    """Adam with L2 weight decay added to the gradient (torch's ``weight_decay``, as the official
    code), fused kernel where the build supports it."""
    try:
        return torch.optim.Adam(params, lr=lr, weight_decay=l2, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr, weight_decay=l2, foreach=True)


def adam_step(optimizer: torch.optim.Adam) -> None:
    """``optimizer.step()``, calling torch's fused Adam kernel directly once the state exists.

    ``Adam.step`` spends ~60 µs of Python around a ~25 µs kernel on an ML-100K-sized table, 5 ms
    (8 %) of a 78-batch epoch. This is the same kernel on the same state (so checkpoints stay
    torch's format), bitwise equal to ``optimizer.step()`` (tested); anything unusual falls back.
    """
    groups = optimizer.param_groups
    group = groups[0]
    fast = (
        len(groups) == 1 and group.get("fused") and not group["amsgrad"] and not group["maximize"]
        and not group.get("decoupled_weight_decay", False) and hasattr(torch, "_fused_adam_")
        and not torch.is_tensor(group["lr"])
    )
    params = [p for p in group["params"] if p.grad is not None]
    if not fast or not params or any(p not in optimizer.state for p in params):
        optimizer.step()
        return
    states = [optimizer.state[p] for p in params]
    steps = [s["step"] for s in states]
    torch._foreach_add_(steps, 1)
    beta1, beta2 = group["betas"]
    torch._fused_adam_(
        params, [p.grad for p in params], [s["exp_avg"] for s in states],
        [s["exp_avg_sq"] for s in states], [], steps, amsgrad=False, lr=group["lr"], beta1=beta1,
        beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"], maximize=False,
        grad_scale=None, found_inf=None,
    )


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


class _Strategy:
    """Shared batch step (fused or autograd); subclasses say which tower trains by gradient.

    Per epoch the trainer calls ``begin_epoch(users, pos, neg)`` with the epoch's shuffled rows,
    then ``step(b)`` and ``after_step(b)`` for every batch b, then ``end_epoch(train)``.
    """

    trains_users: bool

    def __init__(self, encoder: nn.Module, loss: Any, lr: float, l2: float, fused: bool,
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
        self.fused = fused and getattr(encoder, "plain_tables", False) and hasattr(loss, "value_and_grad")

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
        loss, g = self.loss.value_and_grad((v * u).sum(2))
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
        if (neg is not None and hasattr(self.loss, "with_all_items")
                and len(users) * n_items <= FULL_SCORES_LIMIT):
            # Many negatives over a small catalogue: one (B, |I|) product and a gather are cheaper
            # than gathering (B, N, d) negative vectors (same loss value and gradients).
            all_items = enc.item_vectors(torch.arange(n_items, device=neg.device))
            loss = self.loss.with_all_items(u, p, all_items, neg)
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

    def after_step(self, b: int) -> None:
        """Work after the optimizer step (OneBP's aggregation); timed separately by the trainer."""

    def end_epoch(self, train: UserItems) -> None:
        """Work once per epoch (OneBP's per-epoch aggregation)."""

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

    def __init__(self, encoder: nn.Module, loss: Any, lr: float, l2: float, fused: bool,
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


@torch.no_grad()
def momentum_update(target: list[torch.Tensor], online: list[torch.Tensor], tau: float) -> None:
    """In place: ``ξ ← τ·ξ + (1−τ)·θ`` for every (target, online) pair (BYOL/BUIR's target network)."""
    for t, p in zip(target, online, strict=True):
        t.mul_(tau).add_(p.detach(), alpha=1.0 - tau)


class MomentumTarget(Backprop):
    """BUIR (Lee et al., SIGIR 2021): online encoder + predictor trained by gradient, a target
    encoder that follows the online one by momentum (``momentum_update`` after every optimizer
    step), no negatives.

    The encoder provides ``online_parameters()``, ``target_parameters()`` (aligned lists),
    ``user_table``/``item_table`` (online), ``target_user``/``target_item`` and ``predictor``; the
    loss (``onebp.model.losses.BootstrapLoss``) gets ``(q(u_online), u_target, q(i_online), i_target)``.
    Like OneBP's user update, the target moves toward the online vectors by an exponential
    moving average instead of by gradient.
    """

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
