"""Uniform negative sampler: never a train positive, uniform over the rest, no repeats in a row."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from onebp.errors import UserError
from onebp.model import samplers
from onebp.model.interactions import UserItems
from onebp.model.samplers import UniformNegatives


def train_pairs(n_users=4, n_items=12, seed=0):
    rng = np.random.default_rng(seed)
    pairs = []
    for u in range(n_users):
        k = rng.integers(1, n_items // 2)
        pairs += [(u, i) for i in rng.choice(n_items, k, replace=False)]
    return np.array(pairs)


@pytest.fixture(params=["dense", "sorted"])
def membership(request, monkeypatch):
    if request.param == "sorted":
        monkeypatch.setattr(samplers, "DENSE_MEMBERSHIP_LIMIT", 0)
    return request.param


@pytest.mark.parametrize("replace", [False, True])
def test_never_a_positive_and_uniform_over_the_rest(membership, replace):
    pairs = train_pairs()
    train = UserItems.from_pairs(pairs, 4, 12)
    sampler = UniformNegatives(train, n_negatives=3, replace=replace)
    assert (sampler.positives.dense is not None) == (membership == "dense")
    g = torch.Generator().manual_seed(0)
    users = torch.arange(4).repeat_interleave(6000)
    neg = sampler.sample(users, g).numpy()
    assert neg.shape == (24000, 3)
    positives = {(u, i) for u, i in pairs}
    for u in range(4):
        rows = neg[users.numpy() == u]
        allowed = sorted(set(range(12)) - {i for (v, i) in positives if v == u})
        assert set(np.unique(rows)) <= set(allowed), "sampled a train positive"
        counts = np.bincount(rows.ravel(), minlength=12)[allowed]
        assert chisquare(counts).pvalue > 1e-3, counts
        if not replace:
            assert all(len(set(r)) == 3 for r in rows), "repeat inside a row"


def test_without_replacement_gives_uniform_subsets():
    # One user, 5 allowed items, pick 2: each of the 10 subsets equally likely.
    train = UserItems.from_pairs(np.array([[0, 0]]), 1, 6)
    neg = UniformNegatives(train, 2).sample(torch.zeros(20000, dtype=torch.int64),
                                            torch.Generator().manual_seed(1))
    srt = np.sort(neg.numpy(), axis=1)
    codes = srt[:, 0] * 6 + srt[:, 1]
    _, counts = np.unique(codes, return_counts=True)
    assert len(counts) == 10
    assert chisquare(counts).pvalue > 1e-3


def test_many_negatives_use_the_sorted_duplicate_check():
    train = UserItems.from_pairs(np.array([[0, 1], [1, 2]]), 2, 60)
    neg = UniformNegatives(train, 40).sample(torch.tensor([0, 1] * 50), torch.Generator().manual_seed(0))
    assert all(len(set(r.tolist())) == 40 for r in neg)
    assert not any(1 in r.tolist() for r in neg[::2])


def test_same_generator_state_same_negatives():
    train = UserItems.from_pairs(train_pairs(), 4, 12)
    sampler = UniformNegatives(train, 3)
    users = torch.arange(4).repeat(10)
    a = sampler.sample(users, torch.Generator().manual_seed(5))
    b = sampler.sample(users, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_too_few_items_left_is_a_clear_error():
    train = UserItems.from_pairs(np.array([[0, 0], [0, 1], [0, 2], [1, 0]]), 2, 5)
    with pytest.raises(UserError, match="user 0 has 3 of 5 items"):
        UniformNegatives(train, 3)


@pytest.mark.parametrize("n", [0, -1, 2.0, True])
def test_uniform_sampling_needs_at_least_one_negative(n):
    # Zero negatives would give InfoNCE rows with only their positive: loss 0, nothing trained.
    train = UserItems.from_pairs(train_pairs(), 4, 12)
    with pytest.raises(UserError, match=r"n_negatives=.*: uniform negative sampling needs at least one"):
        UniformNegatives(train, n)
    assert UniformNegatives(train, np.int64(1)).n_negatives == 1
