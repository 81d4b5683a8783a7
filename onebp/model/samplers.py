"""Negative samplers, vectorised on the training device.

``UniformNegatives`` draws, for every training interaction (u, i), ``n_negatives`` items uniformly
from the items u has *not* interacted with in train. It works by rejection: draw all negatives of
an epoch at once, then redraw only the rejected ones (a train positive, or — without replacement —
a repeat of another negative in the same row) until none is left. By symmetry over the allowed
items the result is uniform over them, and without replacement it is a uniform random subset of
size N per row (the official code's behaviour). With replacement a row may repeat an item.

Membership "is (u, j) a train positive" uses a dense bit table when |U|·|I| is small, else a binary
search over the sorted keys u·|I| + i (Gowalla/Yelp-sized data never gets a dense |U|×|I| object).
"""

from __future__ import annotations

import numbers

import torch

from onebp.errors import UserError
from onebp.model.interactions import UserItems

DENSE_MEMBERSHIP_LIMIT = 1 << 26  # cells; 64 MB of bools


class TrainPositives:
    """Fast ``contains(users, items)`` over the train interactions, on their device."""

    def __init__(self, train: UserItems) -> None:
        self.n_items = train.n_items
        users = train.user_of_entry()
        keys = users * train.n_items + train.indices
        if train.n_users * train.n_items <= DENSE_MEMBERSHIP_LIMIT:
            self.dense = torch.zeros(train.n_users * train.n_items, dtype=torch.bool,
                                     device=keys.device)
            self.dense[keys] = True
            self.sorted_keys = None
        else:
            self.dense = None
            self.sorted_keys = torch.sort(keys).values

    def contains(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Elementwise: is (users[j], items[j]) a train interaction (same shapes)."""
        keys = (users * self.n_items + items).reshape(-1)  # broadcasts users over items
        if self.dense is not None:
            return self.dense.index_select(0, keys).view(items.shape)
        pos = torch.searchsorted(self.sorted_keys, keys).clamp_(max=len(self.sorted_keys) - 1)
        return (self.sorted_keys.index_select(0, pos) == keys).view(items.shape)



class UniformNegatives:
    """Uniform negatives excluding the user's train positives (see module docstring)."""

    def __init__(self, train: UserItems, n_negatives: int, replace: bool = False) -> None:
        # Zero negatives would leave every loss row with only its positive: loss 0, no gradient, an
        # untrained model saved as finished. In-batch negatives are InBatchNegatives' job.
        if isinstance(n_negatives, bool) or not isinstance(n_negatives, numbers.Integral) or n_negatives < 1:
            raise UserError(f"setting n_negatives={n_negatives!r}: uniform negative sampling needs at least "
                            "one negative per interaction (n_negatives >= 1)")
        self.n_items = train.n_items
        self.n_negatives = n_negatives
        self.replace = replace
        self.positives = TrainPositives(train)
        degrees = train.degrees()
        need = n_negatives if not replace else 1
        worst = int(torch.argmax(degrees))
        if train.n_items - int(degrees[worst]) < need:
            raise UserError(
                f"user {worst} has {int(degrees[worst])} of {train.n_items} items in train: fewer "
                f"than n_negatives={n_negatives} items are left to sample from"
            )

    def sample(self, users: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(len(users), n_negatives) int64 item ids, on the users' device.

        Drawn in the (n_negatives, n) layout — every comparison then runs over contiguous rows —
        and returned as its transpose: ``neg.T`` is the contiguous (n_negatives, n) block the
        fused training step reads.
        """
        shape = (self.n_negatives, len(users))
        neg = torch.randint(self.n_items, shape, generator=generator, device=users.device)
        bad = self._rejected(users, neg)
        # Later rounds only look at the columns that still have a rejected entry (a few percent).
        cols = bad.any(dim=0).nonzero().squeeze(1)
        bad = bad.index_select(1, cols)
        while len(cols):
            sub = neg.index_select(1, cols)
            fresh = torch.randint(self.n_items, sub.shape, generator=generator, device=users.device)
            sub = torch.where(bad, fresh, sub)
            neg.index_copy_(1, cols, sub)
            bad = self._rejected(users.index_select(0, cols), sub)
            keep = bad.any(dim=0).nonzero().squeeze(1)
            cols, bad = cols.index_select(0, keep), bad.index_select(1, keep)
        return neg.T

    def _rejected(self, users: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        """For (n,) users and (k, n) negatives: (k, n) train positives or repeats within a column."""
        bad = self.positives.contains(users[None, :], neg)
        k = neg.shape[0]
        if self.replace or k == 1:
            return bad
        if k <= 16:
            # A value equal to an earlier one in its column is a repeat (k(k-1)/2 comparisons).
            for j in range(1, k):
                bad[j] |= (neg[j] == neg[:j]).any(dim=0)
            return bad
        # Many negatives: mark every occurrence of a value after its first one in sorted order.
        srt, order = torch.sort(neg, dim=0, stable=True)
        dup = torch.zeros_like(bad)
        dup.scatter_(0, order[1:], srt[1:] == srt[:-1])
        return bad | dup


class InBatchNegatives:
    """No sampled negatives: the loss uses the other rows' positive items of the batch."""

    n_negatives = 0

    def sample(self, users: torch.Tensor, generator: torch.Generator) -> None:
        return None
