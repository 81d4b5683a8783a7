"""OneBP's user update: the moving aggregation is exact (rows applied in order, the duplicate-user
modes, a whole epoch's plan), and its ablations (``aggregation`` = none | item_mean |
per_epoch_matched | per_epoch): the control never touches users, the no-memory variant is the mean of
the items, the matched per-epoch step is deg(u) per-batch steps toward a constant target."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from onebp.config import resolve_config
from onebp.data.split_format import load_split
from onebp.methods.registry import get_method
from onebp.model.aggregation import (
    AGGREGATIONS,
    aggregation_plan,
    item_mean_users,
    moving_aggregation,
    per_epoch_aggregation,
)
from onebp.model.interactions import UserItems
from onebp.training.trainer import Trainer

BETA = 0.99
FAST = {"epochs": 6, "eval_every": 3, "batch_size": 128, "dim": 8, "lr": 0.01, "threads": 1,
        "protocol": "paper"}


def trainer(split_dir, **overrides) -> Trainer:
    m = get_method("onebp")
    split = load_split(split_dir)
    cfg = resolve_config(m.name, m.params, m.defaults, split.name, {**FAST, **overrides})
    return Trainer(m, cfg, split, log=lambda msg: None)


def test_every_aggregation_is_a_setting() -> None:
    m = get_method("onebp")
    for value in AGGREGATIONS:
        assert resolve_config(m.name, m.params, m.defaults, "x", {"aggregation": value}).aggregation == value


def test_frozen_users_stay_bit_identical_after_training(tiny_split_dir) -> None:
    t = trainer(tiny_split_dir, aggregation="none")
    users0 = t.model.encoder.user_table.detach().clone()
    items0 = t.model.encoder.item_table.detach().clone()
    t.fit()
    enc = t.model.encoder
    assert torch.equal(enc.user_table.detach(), users0)  # bit for bit
    assert not torch.equal(enc.item_table.detach(), items0)  # the items did train
    assert enc.user_table.grad is None


def test_item_mean_users_equal_a_loop_reference(tiny_split_dir) -> None:
    t = trainer(tiny_split_dir, aggregation="item_mean", epochs=2)
    t.fit()
    enc = t.model.encoder
    split = load_split(tiny_split_dir)
    train = split.part("train")
    users0 = trainer(tiny_split_dir, aggregation="item_mean").model.encoder.user_table.detach()
    items = enc.item_table.detach()
    for u in range(split.n_users):
        mine = train[train[:, 0] == u, 1]
        expected = items[torch.as_tensor(mine)].double().mean(0).float() if len(mine) else users0[u]
        torch.testing.assert_close(enc.user_table[u].detach(), expected, rtol=1e-5, atol=1e-6)


def test_item_mean_function_on_a_hand_worked_example() -> None:
    table = torch.tensor([[9.0, 9.0], [2.0, 0.0], [5.0, 5.0]])
    items = torch.tensor([[0.0, 2.0], [4.0, 0.0], [1.0, 1.0]])
    train = UserItems.from_pairs(np.array([[0, 0], [0, 1], [1, 2]]), 3, 3)
    item_mean_users(table, items, train)
    # user 0: mean([0,2],[4,0]) = [2,1]; user 1: [1,1]; user 2 has no items: unchanged
    torch.testing.assert_close(table, torch.tensor([[2.0, 1.0], [1.0, 1.0], [5.0, 5.0]]))


@pytest.mark.parametrize("beta", [0.5, 0.9, 0.99])
def test_matched_per_epoch_step_equals_deg_per_batch_steps_toward_a_constant_target(beta) -> None:
    g = torch.Generator().manual_seed(0)
    n_users, n_items, d = 5, 7, 3
    pairs = np.array([[0, 1], [0, 2], [0, 3], [1, 4], [3, 0], [3, 5], [3, 6], [3, 1], [3, 2]])
    train = UserItems.from_pairs(pairs, n_users, n_items)
    table = torch.randn(n_users, d, generator=g, dtype=torch.float64)
    items = torch.randn(n_items, d, generator=g, dtype=torch.float64)
    matched = table.clone()
    per_epoch_aggregation(matched, items, train, beta, matched=True)
    # reference: deg(u) sequential per-batch steps, every row's target the user's item mean
    ref = table.clone()
    for u in range(n_users):
        mine = pairs[pairs[:, 0] == u, 1]
        if len(mine) == 0:
            continue
        target = items[torch.as_tensor(mine)].mean(0)
        for _ in mine:  # one row per interaction, applied in separate batches
            moving_aggregation(ref, torch.tensor([u]), target[None], beta, "sequential")
    # (the per-batch plan's coefficients are float32: agreement to float32 precision)
    torch.testing.assert_close(matched, ref, rtol=1e-6, atol=1e-6)
    # and all of a user's rows in one batch (sequential duplicates) give the same
    one_batch = table.clone()
    rows = torch.as_tensor(pairs[:, 0])
    targets = torch.stack([items[torch.as_tensor(pairs[pairs[:, 0] == u, 1])].mean(0) for u in pairs[:, 0]])
    moving_aggregation(one_batch, rows, targets, beta, "sequential")
    torch.testing.assert_close(matched, one_batch, rtol=1e-6, atol=1e-6)
    # the unmatched per-epoch step moves deg(u)-times less far (one β step)
    once = table.clone()
    per_epoch_aggregation(once, items, train, beta)
    assert torch.allclose(once[1], matched[1])  # deg 1: the same
    assert not torch.allclose(once[3], matched[3])


@pytest.mark.parametrize("aggregation", ["per_epoch_matched", "item_mean", "none"])
def test_ablations_train_and_differ_from_onebp(tiny_split_dir, aggregation) -> None:
    base = trainer(tiny_split_dir).fit()["best_on_test"]["ndcg@20"]
    other = trainer(tiny_split_dir, aggregation=aggregation).fit()["best_on_test"]["ndcg@20"]
    assert np.isfinite(other) and other != base


def reference_sequential(table, users, targets, beta):
    out = table.clone()
    for u, t in zip(users.tolist(), targets, strict=True):
        out[u] = beta * out[u] + (1 - beta) * t
    return out


@pytest.mark.parametrize("seed", range(5))
def test_sequential_aggregation_equals_rows_applied_in_order(seed):
    g = torch.Generator().manual_seed(seed)
    table = torch.randn(5, 3, generator=g)
    users = torch.randint(5, (12,), generator=g)  # duplicates guaranteed
    targets = torch.randn(12, 3, generator=g)
    expected = reference_sequential(table, users, targets, BETA)
    moving_aggregation(table, users, targets, BETA, "sequential")
    torch.testing.assert_close(table, expected, rtol=1e-6, atol=1e-7)


def test_mean_and_official_duplicate_modes():
    table = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])
    users = torch.tensor([0, 1, 0, 0])
    targets = torch.tensor([[3.0, 0.0], [0.0, 5.0], [0.0, 3.0], [6.0, 6.0]])
    mean = table.clone()
    moving_aggregation(mean, users, targets, 0.5, "mean")
    # user 0: 0.5*[1,0] + 0.5*mean([3,0],[0,3],[6,6]) = [0.5,0] + 0.5*[3,3] = [2.0, 1.5]
    torch.testing.assert_close(mean, torch.tensor([[2.0, 1.5], [0.0, 3.0], [2.0, 2.0]]))
    official = table.clone()
    moving_aggregation(official, users, targets, 0.5, "official")
    # last writer of user 0 is row 3: 0.5*[1,0] + 0.5*[6,6] = [3.5, 3]
    torch.testing.assert_close(official, torch.tensor([[3.5, 3.0], [0.0, 3.0], [2.0, 2.0]]))


def test_plan_over_an_epoch_equals_per_batch_aggregation():
    g = torch.Generator().manual_seed(3)
    users = torch.randint(7, (50,), generator=g)
    targets = torch.randn(50, 4, generator=g)
    for mode in ("sequential", "mean", "official"):
        a = torch.randn(7, 4, generator=torch.Generator().manual_seed(1))
        b = a.clone()
        plan = aggregation_plan(users, 8, 7, BETA, mode)
        for batch in range(7):  # 6 full batches + one partial batch of 2 rows
            sl = slice(batch * 8, (batch + 1) * 8)
            plan.apply(batch, a, users[sl], targets[sl])
            moving_aggregation(b, users[sl], targets[sl], BETA, mode)
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_per_epoch_aggregation_uses_mean_of_train_items():
    table = torch.tensor([[1.0, 1.0], [2.0, 0.0], [5.0, 5.0]])
    items = torch.tensor([[0.0, 2.0], [4.0, 0.0], [1.0, 1.0]])
    train = UserItems.from_pairs(np.array([[0, 0], [0, 1], [1, 2]]), 3, 3)
    per_epoch_aggregation(table, items, train, 0.5)
    # user 0: 0.5*[1,1] + 0.5*mean([0,2],[4,0]) = [0.5,0.5]+[1,0.5]; user 2 has no items: unchanged
    torch.testing.assert_close(table, torch.tensor([[1.5, 1.0], [1.5, 0.5], [5.0, 5.0]]))
