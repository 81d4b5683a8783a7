"""Split kinds: disjoint parts covering the input, documented sizes, temporal order, seeding."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onebp.data.split_format import Split, validate_split
from onebp.data.splitting import SPLIT_KINDS, derive_rng, make_split, per_user_test_size, random_ratio_split
from onebp.errors import UserError


def data(seed: int = 0, n_users: int = 40, n_items: int = 60):
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        k = int(rng.integers(1, 25))
        rows += [(u, int(i)) for i in rng.choice(n_items, size=k, replace=False)]
    pairs = np.array(rows, dtype=np.int64)
    ts = rng.integers(0, 30, size=len(pairs))  # coarse: many ties
    return pairs, ts, n_users, n_items


def split(kind, pairs, ts, n_users, seed=0, test_ratio=0.2, valid_ratio=0.0, given_test=None):
    return make_split(
        kind, pairs, n_users, test_ratio=test_ratio, valid_ratio=valid_ratio,
        rng_test=derive_rng("d", kind, seed, "test"), rng_valid=derive_rng("d", kind, seed, "valid"),
        timestamps=ts, given_test=given_test,
    )


def as_set(a) -> set[tuple[int, int]]:
    return {tuple(map(int, r)) for r in np.asarray(a).reshape(-1, 2)}


@pytest.mark.parametrize("kind", ["ratio", "temporal", "loo-random", "loo-latest"])
@pytest.mark.parametrize("valid_ratio", [0.0, 0.25])
def test_parts_disjoint_and_cover_input(kind, valid_ratio):
    pairs, ts, n_users, n_items = data()
    parts, info = split(kind, pairs, ts, n_users, valid_ratio=valid_ratio)
    validate_split(Split(n_users, n_items, parts))
    union = set().union(*(as_set(p) for p in parts.values()))
    assert union == as_set(pairs) and sum(len(p) for p in parts.values()) == len(pairs)
    assert ("valid" in parts) == (valid_ratio > 0)
    n = np.bincount(pairs[:, 0], minlength=n_users)
    n_train_before_valid = n - np.bincount(parts["test"][:, 0], minlength=n_users)
    n_test = np.bincount(parts["test"][:, 0], minlength=n_users)
    if kind in ("ratio", "temporal"):
        assert (n_test == per_user_test_size(n, 0.2)).all()
    else:
        assert (n_test == (n >= 2)).all()
    if valid_ratio:
        n_valid = np.bincount(parts["valid"][:, 0], minlength=n_users)
        want = per_user_test_size(n_train_before_valid, valid_ratio) if not kind.startswith("loo") else (
            n_train_before_valid >= 2
        )
        assert (n_valid == want).all()
    assert (np.bincount(parts["train"][:, 0], minlength=n_users) >= 1).all()  # everyone keeps a train item
    assert info["users_without_train"] == 0


def test_per_user_test_size_rule():
    n = np.array([0, 1, 2, 3, 4, 5, 7, 8, 12, 13, 100])
    # round(0.2 n) half away from zero, capped at n-1
    assert per_user_test_size(n, 0.2).tolist() == [0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 20]
    assert per_user_test_size(np.array([5, 3]), 0.5).tolist() == [3, 2]  # 2.5 -> 3; 1.5 -> 2 (cap 2)


@pytest.mark.parametrize("kind", ["temporal", "loo-latest"])
@pytest.mark.parametrize("valid_ratio", [0.0, 0.3])
def test_temporal_never_tests_before_train(kind, valid_ratio):
    pairs, ts, n_users, _ = data(3)
    parts, _ = split(kind, pairs, ts, n_users, valid_ratio=valid_ratio)
    when = {tuple(map(int, p)): int(t) for p, t in zip(pairs, ts, strict=True)}
    last_train = {}
    for u, i in parts["train"]:
        last_train[u] = max(last_train.get(u, -1), when[(u, i)])
    for name in ("valid", "test"):
        for u, i in parts.get(name, []):
            assert when[(u, i)] >= last_train[u]
    if "valid" in parts:
        last_valid = {}
        for u, i in parts["valid"]:
            last_valid[u] = max(last_valid.get(u, -1), when[(u, i)])
        first_test = {}
        for u, i in parts["test"]:
            first_test[u] = min(first_test.get(u, 10**9), when[(u, i)])
        assert all(first_test[u] >= t for u, t in last_valid.items() if u in first_test)


@pytest.mark.parametrize("kind", ["ratio", "temporal", "loo-random", "loo-latest"])
def test_seeding(kind):
    pairs, ts, n_users, _ = data()
    a, _ = split(kind, pairs, ts, n_users, seed=1, valid_ratio=0.2)
    b, _ = split(kind, pairs, ts, n_users, seed=1, valid_ratio=0.2)
    c, _ = split(kind, pairs, ts, n_users, seed=2, valid_ratio=0.2)
    assert all((a[k] == b[k]).all() for k in a)
    if kind in ("ratio", "loo-random"):
        assert as_set(a["test"]) != as_set(c["test"])
    # temporal kinds only differ where ties cross the boundary; the valid part still depends on the seed
    assert any(as_set(a[k]) != as_set(c[k]) for k in a)


def test_derive_rng_is_stable():
    assert derive_rng("ml-100k", "ratio", 0, "test").integers(0, 10**9) == derive_rng(
        "ml-100k", "ratio", 0, "test"
    ).integers(0, 10**9)
    # The seed is sha256 of the key, not hash(): the same on every machine and Python process.
    digest = hashlib.sha256(b"ml-100k\x1fratio\x1f0\x1ftest").digest()
    entropy = derive_rng("ml-100k", "ratio", 0, "test").bit_generator.seed_seq.entropy
    assert entropy == int.from_bytes(digest[:16], "little")


def test_given_split_drops_what_cannot_be_used():
    train = np.array([[0, 0], [0, 1], [1, 2], [1, 2]])
    test = np.array([[0, 2], [0, 0], [2, 1], [1, 3]])  # (0,0) also in train; user 2 has no train item
    parts, info = split("given", train, None, 3, given_test=test)
    assert as_set(parts["train"]) == {(0, 0), (0, 1), (1, 2)}
    assert as_set(parts["test"]) == {(0, 2), (1, 3)}
    assert info["dropped_test_in_train"] == 1 and info["dropped_duplicate_train"] == 1
    assert info["users_without_train"] == 1 and info["dropped_heldout_without_train"] == 1


def test_given_with_validation():
    pairs, _, n_users, n_items = data(5)
    rng = np.random.default_rng(0)
    is_test = rng.random(len(pairs)) < 0.2
    parts, _ = split("given", pairs[~is_test], None, n_users, valid_ratio=0.1, given_test=pairs[is_test])
    validate_split(Split(n_users, n_items, parts))
    assert as_set(parts["train"]) | as_set(parts["valid"]) == as_set(pairs[~is_test])
    assert as_set(parts["test"]) == as_set(pairs[is_test])


def test_bad_arguments():
    pairs, ts, n_users, _ = data()
    with pytest.raises(UserError, match="unknown split kind"):
        split("weird", pairs, ts, n_users)
    with pytest.raises(UserError, match="timestamps"):
        split("temporal", pairs, None, n_users)
    with pytest.raises(UserError, match="published train and test"):
        split("given", pairs, None, n_users)
    assert set(SPLIT_KINDS) == {"ratio", "temporal", "loo-random", "loo-latest", "given"}


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 9)), min_size=1, max_size=40, unique=True),
       st.floats(0.0, 0.9), st.integers(0, 3))
def test_random_ratio_split_property(rows, ratio, seed):
    pairs = np.array(rows, dtype=np.int64)
    kept, held = random_ratio_split(pairs, 6, ratio, np.random.default_rng(seed))
    assert as_set(kept) | as_set(held) == as_set(pairs) and not as_set(kept) & as_set(held)
    n = np.bincount(pairs[:, 0], minlength=6)
    assert (np.bincount(held[:, 0], minlength=6) == per_user_test_size(n, ratio)).all()
