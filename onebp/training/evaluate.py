"""Full-ranking top-K evaluation (docs/method.md, "Official evaluation").

Every evaluated user's held-out items are looked for in a ranking over *all* items, after the items of
the ``exclude`` parts (train; plus valid when testing) are masked with ``-inf``. Relevance is binary.
Users are processed in chunks whose size is bounded by ``memory_budget_mb``, so no dense
``|U| x |I|`` matrix is ever built for the whole dataset (Gowalla: 29,858 x 40,981).

Ranking is deterministic: among equal scores the lower item id ranks first, i.e. the ranking is
``stable argsort(-scores)``. ``torch.topk`` gives no order among ties, so the top-(K+1) set is
re-ordered stably and rows where the K-th value equals the (K+1)-th (a tie that may reach outside
the selected set) are redone with a full stable sort.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from onebp.model.interactions import UserItems

METRICS = ("precision", "recall", "ndcg", "hit", "mrr", "f1")

# Bytes per score-matrix element counted against the memory budget, worst case (float64 scores, every
# row tied at the K boundary): the scores (8), their masked copy (8), the held-out bool mask (1), and
# the full stable sort of tied rows (row copy 8 + sorted values 8 + int64 indices 8 + sort scratch).
# Rounded up so the budget is a real upper bound for a chunk, not a hope.
_BYTES_PER_ELEMENT = 64


@dataclass
class RankingMetrics:
    mean: dict[str, float]  # e.g. "recall@20" -> mean over evaluated users
    per_user: dict[str, np.ndarray]  # same keys, float64, aligned with `users`
    users: np.ndarray  # int64 ids of evaluated users (>= 1 held-out item)


def metric_keys(ks: Sequence[int]) -> list[str]:
    """The result keys, ``f"{metric}@{k}"`` for every metric in METRICS and k in ks (in that order)."""
    return [f"{m}@{k}" for m in METRICS for k in ks]


def chunk_size(n_items: int, memory_budget_mb: float) -> int:
    """Users per chunk so that one chunk's score matrix and its temporaries fit the budget (>= 1)."""
    return max(1, int(memory_budget_mb * 2**20 // (max(n_items, 1) * _BYTES_PER_ELEMENT)))


# 1/log2(rank + 2) for ranks 0..K-1 and its prefix sums (IDCG for |T| = 1..K), per (K, device).
# Cached because the trainer evaluates after every epoch with the same K.
_DISCOUNTS: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = {}


def _discounts(k: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    key = (k, str(device))
    if key not in _DISCOUNTS:
        disc = 1.0 / torch.log2(torch.arange(k, dtype=torch.float64, device=device) + 2.0)
        _DISCOUNTS[key] = (disc, torch.cumsum(disc, 0))
    return _DISCOUNTS[key]


def _check_part(part: UserItems, ref: UserItems, what: str) -> None:
    if (part.n_users, part.n_items) != (ref.n_users, ref.n_items):
        raise ValueError(
            f"{what} has {part.n_users} users x {part.n_items} items, "
            f"held-out has {ref.n_users} x {ref.n_items}"
        )
    if part.indptr.device != ref.indptr.device:
        raise ValueError(f"{what} is on {part.indptr.device}, held-out on {ref.indptr.device}")


def _top_k_stable(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``k`` entries of ``stable argsort(-scores)`` per row: (values, item ids).

    ``topk`` picks *a* top set; among ties it may pick any item and in any order. We take the top
    ``k + 1`` and fix the order within that set by sorting on item id and then stably on score. The
    first ``k`` of them are then exactly right unless the k-th value equals the (k+1)-th: only then
    can an unselected item with a lower id tie with the boundary. Those rows (usually none for
    real-valued model scores; rows with fewer than k unmasked items) are redone with a full stable
    sort. Looking at the (k+1)-th value costs nothing extra, unlike counting ``scores >= boundary``
    over the whole row.
    """
    n_items = scores.shape[1]
    kk = min(k + 1, n_items)
    vals, idx = torch.topk(scores, kk, dim=1, largest=True, sorted=True)
    idx, perm = torch.sort(idx, dim=1)
    vals = torch.gather(vals, 1, perm)
    vals, perm = torch.sort(vals, dim=1, descending=True, stable=True)
    idx = torch.gather(idx, 1, perm)
    if kk > k:
        # One device->host sync per chunk: the number of ambiguous rows decides the work to do.
        # (NaN == NaN is False, but NaN rows raise later anyway.)
        ambiguous = torch.nonzero(vals[:, k - 1] == vals[:, k]).squeeze(1)
        vals, idx = vals[:, :k], idx[:, :k]
        if ambiguous.numel() > 0:
            # Stable descending sort keeps the lower index first among equal values (tested).
            full_vals, full_idx = torch.sort(scores[ambiguous], dim=1, descending=True, stable=True)
            vals[ambiguous] = full_vals[:, :k]
            idx[ambiguous] = full_idx[:, :k]
    return vals, idx


def full_ranking_metrics(
    score_users: Callable[[torch.Tensor], torch.Tensor],
    heldout: UserItems,
    exclude: Sequence[UserItems],
    ks: Sequence[int] = (5, 10, 20),
    memory_budget_mb: float = 256.0,
    users: torch.Tensor | None = None,
) -> RankingMetrics:
    """Top-K metrics of a full ranking over all items, averaged over users with >= 1 held-out item.

    ``score_users(user_ids)`` maps int64 user ids (on the held-out part's device) to a
    ``(len(user_ids), n_items)`` floating score matrix on that device. Items of every ``exclude``
    part are set to ``-inf`` before ranking; ties rank the lower item id first. With ``T`` the user's
    held-out set and ``hits`` the number of top-K items in ``T``:

    - precision@K = hits / K;  recall@K = hits / |T|;  hit@K = 1[hits > 0];
    - mrr@K = 1 / (1-based rank of the first hit in the top K), 0 if none;
    - ndcg@K = DCG / IDCG, DCG = sum over top-K ranks r (0-based) holding an item of T of
      1 / log2(r + 2); IDCG is the same sum over the first min(|T|, K) ranks;
    - f1@K = 2 P R / (P + R) computed *per user* (0 when P + R = 0) and then averaged over users,
      which is not the F1 of the averaged P and R. Per user it equals 2 hits / (K + |T|).

    K may exceed ``n_items``; the ranking then simply ends early (precision still divides by K).
    Excluded items are never counted as hits, even when they reach the top K (a user with fewer
    than K unexcluded items) or when a held-out item is also in an excluded part.

    ``ks`` is de-duplicated and sorted, which fixes the key order (see :func:`metric_keys`).
    ``users`` restricts the evaluation to those ids; users among them without held-out items are
    dropped, as are duplicates. Results always follow ascending user id. If no user is left, the
    means are NaN and the arrays empty. A NaN score on an item that is ranked (not excluded) raises
    ``ValueError``: a diverged model must not produce plausible-looking metrics.
    """
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must be positive integers, got {ks}")
    if memory_budget_mb <= 0:
        raise ValueError(f"memory_budget_mb must be positive, got {memory_budget_mb}")
    for j, part in enumerate(exclude):
        _check_part(part, heldout, f"exclude[{j}]")
    device = heldout.indptr.device
    n_items = heldout.n_items
    keys = metric_keys(ks)

    has_heldout = heldout.degrees() > 0
    if users is None:
        eval_users = torch.nonzero(has_heldout).squeeze(1)
    else:
        eval_users = torch.unique(torch.as_tensor(users, dtype=torch.int64, device=device))
        if eval_users.numel() and (eval_users[0] < 0 or eval_users[-1] >= heldout.n_users):
            raise ValueError(f"users must lie in [0, {heldout.n_users})")
        eval_users = eval_users[has_heldout[eval_users]]
    n_eval = int(eval_users.numel())
    if n_eval == 0:
        empty = np.zeros(0, dtype=np.float64)
        return RankingMetrics(
            {k: float("nan") for k in keys}, {k: empty.copy() for k in keys}, np.zeros(0, np.int64)
        )

    max_k = min(ks[-1], n_items)
    # Column of the cumulative (over ranks) tables that answers each K; K > n_items reads the end.
    cols = torch.tensor([min(k, n_items) - 1 for k in ks], device=device)
    k_vals = torch.tensor(ks, dtype=torch.float64, device=device)
    disc, idcg_table = _discounts(max_k, device)
    rr_by_rank = 1.0 / torch.arange(1, max_k + 1, dtype=torch.float64, device=device)
    n_heldout_all = heldout.degrees().to(torch.float64)

    # Per-user results stay on the device, one row per metric@k, and cross to the host once.
    out = torch.empty((len(METRICS), len(ks), n_eval), dtype=torch.float64, device=device)
    nan_seen = torch.zeros((), dtype=torch.bool, device=device)
    step = chunk_size(n_items, memory_budget_mb)

    for start in range(0, n_eval, step):
        chunk_users = eval_users[start : start + step]
        c = chunk_users.numel()
        scores = score_users(chunk_users)
        if scores.shape != (c, n_items):
            raise ValueError(f"score_users returned shape {tuple(scores.shape)}, expected {(c, n_items)}")
        if scores.device != device:
            raise ValueError(f"score_users returned scores on {scores.device}, expected {device}")
        if not scores.is_floating_point():
            scores = scores.to(torch.float64)

        # Held-out membership of this chunk only (c x n_items bools), gathered at the top-K below.
        relevant = torch.zeros((c, n_items), dtype=torch.bool, device=device)
        relevant.index_put_(heldout.rows(chunk_users), torch.ones((), dtype=torch.bool, device=device))
        neg_inf = scores.new_full((), -torch.inf)
        masked_scores = None
        for part in exclude:
            row, item = part.rows(chunk_users)
            # Out of place the first time: the caller's score tensor may be a cache we must not edit.
            if masked_scores is None:
                masked_scores = scores.index_put((row, item), neg_inf)
            else:
                masked_scores.index_put_((row, item), neg_inf)
            # Excluded items are never relevant, even if a held-out item is also in an excluded part.
            relevant.index_put_((row, item), torch.zeros((), dtype=torch.bool, device=device))
        if masked_scores is not None:
            scores = masked_scores

        top_vals, top_idx = _top_k_stable(scores, max_k)
        # topk and sort rank NaN above everything, so a NaN anywhere in a row shows up in its top-K.
        nan_seen |= torch.isnan(top_vals).any()
        hits = torch.gather(relevant, 1, top_idx).to(torch.float64)  # (c, max_k)

        n_heldout = n_heldout_all[chunk_users].unsqueeze(1)  # (c, 1), >= 1
        hits_at = torch.cumsum(hits, 1)[:, cols]  # (c, len(ks))
        dcg_at = torch.cumsum(hits * disc, 1)[:, cols]
        ideal_len = torch.minimum(n_heldout, k_vals).to(torch.int64) - 1  # IDCG over min(|T|, K)
        idcg_at = idcg_table[torch.clamp(ideal_len, max=max_k - 1)]
        # The reciprocal rank of the first hit is the running maximum of hit / rank.
        mrr_at = torch.cummax(hits * rr_by_rank, 1).values[:, cols]

        sl = slice(start, start + c)
        out[0, :, sl] = (hits_at / k_vals).T
        out[1, :, sl] = (hits_at / n_heldout).T
        out[2, :, sl] = (dcg_at / idcg_at).T
        out[3, :, sl] = (hits_at > 0).to(torch.float64).T
        out[4, :, sl] = mrr_at.T
        out[5, :, sl] = (2.0 * hits_at / (k_vals + n_heldout)).T

    if bool(nan_seen):
        raise ValueError("score_users returned NaN scores; the ranking is undefined")
    out_np = out.reshape(len(METRICS) * len(ks), n_eval).cpu().numpy()
    per_user = {key: out_np[j].copy() for j, key in enumerate(keys)}
    mean = {key: float(v.mean()) for key, v in per_user.items()}
    return RankingMetrics(mean, per_user, eval_users.cpu().numpy().astype(np.int64))
