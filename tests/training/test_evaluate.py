"""Full-ranking metrics: brute-force NumPy reference, hand-worked cases, chunking, properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from onebp.model.interactions import UserItems
from onebp.training.evaluate import (
    _BYTES_PER_ELEMENT,
    METRICS,
    RankingMetrics,
    chunk_size,
    full_ranking_metrics,
    metric_keys,
)

# --------------------------------------------------------------------------------------------- helpers


def budget_for_chunk(users_per_chunk: int, n_items: int) -> float:
    """A memory budget (MB) whose chunk size is exactly ``users_per_chunk`` users."""
    # Half a row of slack so that float rounding cannot floor to one user fewer.
    budget = (users_per_chunk + 0.5) * n_items * _BYTES_PER_ELEMENT / 2**20
    assert chunk_size(n_items, budget) == users_per_chunk
    return budget


def parts_of(pairs: np.ndarray, n_users: int, n_items: int) -> UserItems:
    return UserItems.from_pairs(pairs.reshape(-1, 2).astype(np.int64), n_users, n_items)


def random_problem(
    seed: int, n_users: int = 13, n_items: int = 11, score_range: int = 4
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Integer scores (many ties) and disjoint train/valid/test pairs.

    Some users get no test items (must be skipped) and some get nearly all items in train (fewer
    unmasked items than K, so masked ``-inf`` items reach the top K).
    """
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, score_range, size=(n_users, n_items)).astype(np.float64)
    which = rng.choice(4, size=(n_users, n_items), p=[0.35, 0.35, 0.1, 0.2])  # none/train/valid/test
    which[0, :] = 1  # user 0: everything in train, so no test item
    which[1, :] = 1  # user 1: one test item, everything else train
    which[1, rng.integers(n_items)] = 3
    u, i = np.nonzero(which == 1)
    train = np.stack([u, i], 1)
    u, i = np.nonzero(which == 2)
    valid = np.stack([u, i], 1)
    u, i = np.nonzero(which == 3)
    test = np.stack([u, i], 1)
    return scores, train, valid, test


def reference_metrics(
    scores: np.ndarray,
    heldout: np.ndarray,
    exclude: list[np.ndarray],
    ks: list[int],
    users: list[int] | None = None,
) -> tuple[list[int], dict[str, list[float]]]:
    """Loop over users: stable argsort of -scores (ties -> lower item id), excluded items at -inf."""
    n_users, n_items = scores.shape
    held = [set(heldout[heldout[:, 0] == u, 1].tolist()) for u in range(n_users)]
    excl = [set() for _ in range(n_users)]
    for part in exclude:
        for u, i in part:
            excl[u].add(int(i))
    cand = range(n_users) if users is None else sorted(set(users))
    out_users = []
    res: dict[str, list[float]] = {key: [] for key in metric_keys(ks)}
    for u in cand:
        t = held[u]
        if not t:
            continue
        out_users.append(u)
        s = scores[u].astype(np.float64).copy()
        s[list(excl[u])] = -np.inf
        order = np.argsort(-s, kind="stable")
        for k in ks:
            top = order[:k]
            rel = [int(i) in t and int(i) not in excl[u] for i in top]
            h = sum(rel)
            p, r = h / k, h / len(t)
            dcg = sum(1 / math.log2(pos + 2) for pos, x in enumerate(rel) if x)
            idcg = sum(1 / math.log2(pos + 2) for pos in range(min(len(t), k)))
            first = next((pos for pos, x in enumerate(rel) if x), None)
            res[f"precision@{k}"].append(p)
            res[f"recall@{k}"].append(r)
            res[f"ndcg@{k}"].append(dcg / idcg)
            res[f"hit@{k}"].append(float(h > 0))
            res[f"mrr@{k}"].append(0.0 if first is None else 1 / (first + 1))
            res[f"f1@{k}"].append(0.0 if p + r == 0 else 2 * p * r / (p + r))
    return out_users, res


def evaluate(
    scores: np.ndarray,
    heldout: np.ndarray,
    exclude: list[np.ndarray],
    ks: list[int],
    memory_budget_mb: float = 256.0,
    users: list[int] | None = None,
    dtype: torch.dtype = torch.float64,
) -> RankingMetrics:
    n_users, n_items = scores.shape
    s = torch.as_tensor(scores, dtype=dtype)
    return full_ranking_metrics(
        lambda u: s[u],
        parts_of(heldout, n_users, n_items),
        [parts_of(p, n_users, n_items) for p in exclude],
        ks=ks,
        memory_budget_mb=memory_budget_mb,
        users=None if users is None else torch.tensor(users, dtype=torch.int64),
    )


def assert_matches_reference(got: RankingMetrics, ref_users: list[int], ref: dict[str, list[float]]) -> None:
    np.testing.assert_array_equal(got.users, np.asarray(ref_users, dtype=np.int64))
    assert got.users.dtype == np.int64
    assert set(got.per_user) == set(ref) == set(got.mean)
    for key, values in ref.items():
        assert got.per_user[key].dtype == np.float64
        np.testing.assert_allclose(got.per_user[key], values, rtol=0, atol=1e-9, err_msg=key)
        assert got.mean[key] == pytest.approx(float(np.mean(values)), abs=1e-9), key


# ------------------------------------------------------------------------------ brute-force reference


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("users_per_chunk", [1, 3, 100])
def test_matches_bruteforce_reference_with_ties(seed: int, users_per_chunk: int) -> None:
    # K = 20 > n_items = 11 exercises a ranking shorter than K; K = 1 the tightest boundary.
    ks = [1, 3, 5, 20]
    scores, train, valid, test = random_problem(seed)
    budget = budget_for_chunk(users_per_chunk, scores.shape[1])
    for heldout, exclude in [(valid, [train]), (test, [train, valid])]:
        ref_users, ref = reference_metrics(scores, heldout, exclude, ks)
        assert 0 not in ref_users  # user 0 has no held-out items
        got = evaluate(scores, heldout, exclude, ks, memory_budget_mb=budget)
        assert_matches_reference(got, ref_users, ref)


@pytest.mark.parametrize("seed", [5, 6])
def test_float32_scores_and_wider_problem(seed: int) -> None:
    # More items than K + 1 with only 3 distinct scores: nearly every row is tied at the boundary.
    scores, train, valid, test = random_problem(seed, n_users=20, n_items=40, score_range=3)
    ref_users, ref = reference_metrics(scores, test, [train, valid], [5, 10, 20])
    got = evaluate(scores, test, [train, valid], [5, 10, 20], budget_for_chunk(7, 40), dtype=torch.float32)
    assert_matches_reference(got, ref_users, ref)


def test_real_valued_scores_match_reference() -> None:
    # The common case for model scores: no ties except among masked -inf items.
    rng = np.random.default_rng(11)
    _, train, valid, test = random_problem(11, n_users=30, n_items=50)
    scores = rng.standard_normal((30, 50))
    ref_users, ref = reference_metrics(scores, test, [train], [5, 10, 20])
    assert_matches_reference(evaluate(scores, test, [train], [5, 10, 20]), ref_users, ref)


# ----------------------------------------------------------------------------------- hand-worked cases


def hand_problem() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scores = np.array(
        [
            [0.9, 0.8, 0.7, 0.6, 0.5, 0.4],  # user 0
            [0, 0, 0, 0, 1, 0],  # user 1
            [5, 4, 3, 2, 1, 0],  # user 2
            [1, 1, 1, 1, 1, 1],  # user 3
            [1, 1, 1, 1, 1, 1],  # user 4
            [1, 2, 3, 4, 5, 6],  # user 5
        ],
        dtype=np.float64,
    )
    train = np.array([[0, 0], [4, 0], [4, 1], [5, 5]])
    test = np.array([[0, 2], [0, 5], [1, 4], [2, 5], [3, 2], [3, 3], [4, 3]])  # user 5: none
    return scores, train, test


def test_hand_worked_cases() -> None:
    scores, train, test = hand_problem()
    got = evaluate(scores, test, [train], [1, 3])
    # User 5 has no held-out item: not evaluated, not in any average.
    np.testing.assert_array_equal(got.users, [0, 1, 2, 3, 4])
    l3 = 1 / math.log2(3)  # discount of 0-based rank 1: 0.6309...
    expected = {
        # User 0: train item 0 masked -> ranking 1,2,3,4,5,(0). T = {2, 5}. Top 3 = 1,2,3: one hit at
        # rank 2. P = 1/3, R = 1/2, F1 = 2PR/(P+R) = (1/3)/(5/6) = 0.4, MRR = 1/2,
        # NDCG = l3 / (1 + l3) (IDCG over min(|T|, 3) = 2 ranks) = 0.3868528. Top 1 = item 1: nothing.
        0: {"@1": (0, 0, 0, 0, 0, 0), "@3": (1 / 3, 1 / 2, l3 / (1 + l3), 1, 1 / 2, 0.4)},
        # User 1: fewer held-out items than K. T = {4}, scored highest -> rank 1.
        # @1: everything 1. @3: P = 1/3, R = 1, IDCG over min(1, 3) = 1 rank so NDCG = 1,
        # F1 = 2 * 1/3 * 1 / (4/3) = 0.5.
        1: {"@1": (1, 1, 1, 1, 1, 1), "@3": (1 / 3, 1, 1, 1, 1, 0.5)},
        # User 2: T = {5}, scored lowest -> rank 6: no hit anywhere in the top 3.
        2: {"@1": (0, 0, 0, 0, 0, 0), "@3": (0, 0, 0, 0, 0, 0)},
        # User 3: all scores tied, T = {2, 3}. Ties -> lower id first: ranking 0,1,2,3,4,5. Item 2 is
        # at rank 3 and item 3, tied with it, falls just outside the top 3. P = 1/3, R = 1/2,
        # NDCG = (1/log2 4) / (1 + l3) = 0.5 / 1.6309 = 0.3065736, MRR = 1/3, F1 = 2/(3+2) = 0.4.
        3: {"@1": (0, 0, 0, 0, 0, 0), "@3": (1 / 3, 1 / 2, 0.5 / (1 + l3), 1, 1 / 3, 0.4)},
        # User 4: all tied, train items 0 and 1 masked -> ranking 2,3,4,5,(0,1). T = {3} at rank 2.
        # Without the mask items 0 and 1 would lead. @3: P = 1/3, R = 1, NDCG = l3 / 1, MRR = 1/2,
        # F1 = 2/(3+1) = 0.5.
        4: {"@1": (0, 0, 0, 0, 0, 0), "@3": (1 / 3, 1, l3, 1, 1 / 2, 0.5)},
    }
    for row, user in enumerate(got.users):
        for suffix, values in expected[int(user)].items():
            for metric, value in zip(METRICS, values, strict=True):
                key = metric + suffix
                assert got.per_user[key][row] == pytest.approx(value, abs=1e-12), (user, key)
    for key in got.mean:
        metric, suffix = key.split("@")
        col = METRICS.index(metric)
        manual = np.mean([expected[u]["@" + suffix][col] for u in range(5)])
        assert got.mean[key] == pytest.approx(manual, abs=1e-12), key
    # The same numbers from the reference implementation (guards the hand numbers too).
    assert_matches_reference(got, *reference_metrics(scores, test, [train], [1, 3]))


def test_excluded_items_never_hit_even_in_top_k() -> None:
    # One user, 6 items, items 0..4 excluded (train), so ranks 2.. are masked -inf items.
    # The held-out set {0, 5} overlaps the exclusion (bad split, but be robust): item 0 reaches the
    # top 3 (first -inf item by id) yet must not count. Top 3 = 5, 0, 1 -> one hit (item 5, rank 1);
    # |T| = 2 as given: P = 1/3, R = 1/2, NDCG = 1 / (1 + l3), MRR = 1, hit = 1.
    scores = np.zeros((1, 6))
    train = np.array([[0, i] for i in range(5)])
    test = np.array([[0, 0], [0, 5]])
    got = evaluate(scores, test, [train], [3])
    l3 = 1 / math.log2(3)
    assert got.per_user["precision@3"][0] == pytest.approx(1 / 3)
    assert got.per_user["recall@3"][0] == pytest.approx(1 / 2)
    assert got.per_user["ndcg@3"][0] == pytest.approx(1 / (1 + l3))
    assert got.per_user["mrr@3"][0] == 1.0
    assert got.per_user["hit@3"][0] == 1.0


def test_excluded_items_are_never_ranked_above_others() -> None:
    # Excluded items get the highest model scores; the top K must consist of other items only.
    rng = np.random.default_rng(3)
    n_users, n_items = 8, 30
    scores = rng.standard_normal((n_users, n_items))
    train = np.array([[u, i] for u in range(n_users) for i in range(10)])
    scores[:, :10] += 100.0
    test = np.array([[u, 10 + u] for u in range(n_users)])
    got = evaluate(scores, test, [train], [20])
    # With train masked, 20 unmasked items remain; the top 20 is all of them, so every user is found.
    assert np.all(got.per_user["hit@20"] == 1.0)
    assert np.all(got.per_user["recall@20"] == 1.0)


def test_stable_descending_sort_keeps_lower_index_first() -> None:
    # _top_k_stable relies on this documented behaviour of torch.sort(stable=True, descending=True).
    x = torch.tensor([[1.0, 3.0, 3.0, 1.0, 3.0, -math.inf, 1.0, -math.inf]])
    _, idx = torch.sort(x, dim=1, descending=True, stable=True)
    assert idx.tolist() == [[1, 2, 4, 0, 3, 6, 5, 7]]


# -------------------------------------------------------------------------------- chunking and users


def test_chunking_never_changes_results() -> None:
    scores, train, valid, test = random_problem(21, n_users=17, n_items=9)
    ks = [2, 4, 9]
    base = evaluate(scores, test, [train, valid], ks)
    for per_chunk in [1, 2, 5, 16, 17]:
        got = evaluate(scores, test, [train, valid], ks, budget_for_chunk(per_chunk, 9))
        np.testing.assert_array_equal(got.users, base.users)
        for key in base.per_user:
            np.testing.assert_array_equal(got.per_user[key], base.per_user[key])
            assert got.mean[key] == base.mean[key]


def test_users_argument_restricts_evaluation() -> None:
    scores, train, valid, test = random_problem(4)
    ks = [3]
    full = evaluate(scores, test, [train], ks)
    # Unsorted, duplicated, and user 0 (no held-out items) is silently dropped.
    pick = [7, 2, 0, 7, 5]
    got = evaluate(scores, test, [train], ks, users=pick)
    np.testing.assert_array_equal(got.users, [2, 5, 7])
    rows = np.searchsorted(full.users, [2, 5, 7])
    for key in full.per_user:
        np.testing.assert_array_equal(got.per_user[key], full.per_user[key][rows])
    assert_matches_reference(got, *reference_metrics(scores, test, [train], ks, users=pick))


def test_scored_users_are_only_the_evaluated_ones() -> None:
    scores, train, _, test = random_problem(8)
    seen: list[int] = []
    s = torch.as_tensor(scores)

    def score(u: torch.Tensor) -> torch.Tensor:
        seen.extend(u.tolist())
        return s[u]

    got = full_ranking_metrics(score, parts_of(test, 13, 11), [parts_of(train, 13, 11)], ks=[3])
    assert seen == got.users.tolist()
    # The caller's score tensor is not modified by the -inf masking.
    np.testing.assert_array_equal(s.numpy(), scores)


def test_no_evaluable_users_gives_nan_means() -> None:
    scores = np.zeros((3, 4))
    got = evaluate(scores, np.zeros((0, 2), np.int64), [], [2])
    assert got.users.shape == (0,)
    assert all(math.isnan(v) for v in got.mean.values())
    assert all(v.shape == (0,) for v in got.per_user.values())


def test_keys_and_errors() -> None:
    scores, train, _, test = random_problem(9)
    got = evaluate(scores, test, [train], [10, 5, 5])
    assert list(got.mean) == metric_keys([5, 10]) == [f"{m}@{k}" for m in METRICS for k in (5, 10)]
    with pytest.raises(ValueError, match="ks"):
        evaluate(scores, test, [train], [0])
    # NaN on an item that is ranked (a masked item's score is overwritten, so it would not matter).
    user, item = test[0]
    bad = scores.copy()
    bad[user, item] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        evaluate(bad, test, [train], [3])
    with pytest.raises(ValueError, match="shape"):
        full_ranking_metrics(
            lambda u: torch.zeros(len(u), 5), parts_of(test, 13, 11), [parts_of(train, 13, 11)]
        )
    with pytest.raises(ValueError, match="items"):
        full_ranking_metrics(
            lambda u: torch.zeros(len(u), 11), parts_of(test, 13, 11), [parts_of(train, 13, 12)]
        )


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    scores, train, valid, test = random_problem(12, n_users=40, n_items=60)
    cpu = evaluate(scores, test, [train, valid], [5, 20], budget_for_chunk(7, 60))
    s = torch.as_tensor(scores, device="cuda")
    dev = full_ranking_metrics(
        lambda u: s[u],
        parts_of(test, 40, 60).to("cuda"),
        [parts_of(train, 40, 60).to("cuda"), parts_of(valid, 40, 60).to("cuda")],
        ks=[5, 20],
        memory_budget_mb=budget_for_chunk(7, 60),
    )
    np.testing.assert_array_equal(dev.users, cpu.users)
    for key in cpu.per_user:
        np.testing.assert_allclose(dev.per_user[key], cpu.per_user[key], rtol=0, atol=1e-12)


# -------------------------------------------------------------------------------------------- property


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_users=st.integers(1, 8),
    n_items=st.integers(1, 12),
    score_range=st.integers(1, 4),
    per_chunk=st.integers(1, 8),
)
def test_property_reference_and_invariants(
    seed: int, n_users: int, n_items: int, score_range: int, per_chunk: int
) -> None:
    ks = [1, 2, 4, 8]
    scores, train, valid, test = random_problem(seed, n_users + 2, n_items, score_range)
    got = evaluate(scores, test, [train, valid], ks, budget_for_chunk(per_chunk, n_items))
    assert_matches_reference(got, *reference_metrics(scores, test, [train, valid], ks))
    pu = got.per_user
    for a, b in zip(ks, ks[1:], strict=False):
        # More positions can only add hits: recall, hit, MRR and hit counts never decrease with K.
        for metric in ("recall", "hit", "mrr"):
            assert np.all(pu[f"{metric}@{b}"] >= pu[f"{metric}@{a}"] - 1e-12)
        assert np.all(pu[f"precision@{b}"] * b >= pu[f"precision@{a}"] * a - 1e-12)
    for k in ks:
        for metric in METRICS:
            assert np.all((pu[f"{metric}@{k}"] >= 0) & (pu[f"{metric}@{k}"] <= 1 + 1e-12))
        # hit = 1[hits > 0] bounds precision, recall and MRR; MRR >= hit / K (first hit within K).
        assert np.all(pu[f"hit@{k}"] >= pu[f"precision@{k}"])
        assert np.all(pu[f"hit@{k}"] >= pu[f"recall@{k}"])
        assert np.all(pu[f"mrr@{k}"] >= pu[f"hit@{k}"] / k - 1e-12)
        assert np.all(pu[f"mrr@{k}"] <= pu[f"hit@{k}"])
