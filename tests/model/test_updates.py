"""OneBP / TwoBP update arithmetic: exact moving aggregation, no user gradient, fused == autograd."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from onebp.model.aggregation import aggregation_plan, moving_aggregation, per_epoch_aggregation
from onebp.model.encoders import MF
from onebp.model.interactions import UserItems
from onebp.model.losses import BPR, InfoNCE
from onebp.model.updates import Backprop, OneBP

BETA = 0.99


def make_encoder(n_users=6, n_items=9, dim=4, seed=0) -> MF:
    g = torch.Generator().manual_seed(seed)
    return MF(n_users, n_items, dim, g, torch.device("cpu"))


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


def one_batch(strategy, users, pos, neg):
    strategy.begin_epoch(users, pos, neg)
    loss = strategy.step(0)
    strategy.after_step(0)
    return loss


@pytest.mark.parametrize("fused", [True, False])
def test_onebp_users_get_no_gradient_and_move_exactly_toward_updated_items(fused):
    enc = make_encoder()
    strategy = OneBP(enc, InfoNCE(), lr=0.01, l2=1e-5, fused=fused, batch_size=4, beta=BETA)
    old_users = enc.user_table.detach().clone()
    users = torch.tensor([0, 2, 3, 5])  # each once: exact formula
    pos = torch.tensor([1, 4, 4, 7])
    neg = torch.tensor([[0, 2], [3, 5], [6, 8], [0, 3]])
    one_batch(strategy, users, pos, neg)
    assert enc.user_table.grad is None
    assert not enc.user_table.requires_grad
    assert enc.user_table not in strategy.optimizer.state
    assert all(p is not enc.user_table for group in strategy.optimizer.param_groups for p in group["params"])
    assert enc.item_table in strategy.optimizer.state
    updated_items = enc.item_table.detach()
    for u, i in zip(users.tolist(), pos.tolist(), strict=True):
        expected = BETA * old_users[u] + (1 - BETA) * updated_items[i]
        assert torch.equal(enc.user_table[u], expected), (u, enc.user_table[u] - expected)
    untouched = [1, 4]
    assert torch.equal(enc.user_table[untouched], old_users[untouched])


def test_onebp_items_move_and_twobp_moves_users():
    enc = make_encoder()
    old_items = enc.item_table.detach().clone()
    one_batch(OneBP(enc, InfoNCE(), 0.01, 0.0, True, 2, beta=BETA),
              torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([[4], [5]]))
    assert not torch.equal(enc.item_table.detach()[[2, 3, 4, 5]], old_items[[2, 3, 4, 5]])
    enc2 = make_encoder()
    old_users = enc2.user_table.detach().clone()
    one_batch(Backprop(enc2, InfoNCE(), 0.01, 0.0, True, 2),
              torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([[4], [5]]))
    assert not torch.equal(enc2.user_table.detach()[:2], old_users[:2])
    assert torch.equal(enc2.user_table.detach()[2:], old_users[2:])  # Adam: zero grad, zero moments


@pytest.mark.parametrize("batch_l2", [0.0, 0.05])
@pytest.mark.parametrize("loss", [InfoNCE(), InfoNCE(temperature=0.3), BPR()])
@pytest.mark.parametrize("cls", [OneBP, Backprop])
def test_fused_gradients_equal_autograd(loss, cls, batch_l2):
    g = torch.Generator().manual_seed(7)
    users = torch.randint(6, (16,), generator=g)
    pos = torch.randint(9, (16,), generator=g)
    neg = torch.randint(9, (16, 3), generator=g)
    results = []
    for fused in (True, False):
        enc = make_encoder(seed=1)
        kwargs = {"beta": BETA} if cls is OneBP else {}
        strategy = cls(enc, loss, 0.01, 1e-4, fused, 16, batch_l2=batch_l2, **kwargs)
        assert strategy.fused == fused
        losses = [one_batch(strategy, users, pos, neg) for _ in range(3)]
        results.append((losses, copy.deepcopy(enc.state_dict())))
    (l1, s1), (l2, s2) = results
    torch.testing.assert_close(torch.stack(l1), torch.stack(l2), rtol=1e-5, atol=1e-6)
    for k in s1:
        torch.testing.assert_close(s1[k], s2[k], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("loss", [InfoNCE(), InfoNCE(temperature=0.5), BPR()])
def test_value_and_grad_matches_autograd_of_the_loss(loss):
    g = torch.Generator().manual_seed(0)
    u = torch.randn(8, 4, generator=g)
    p = torch.randn(8, 4, generator=g)
    n = torch.randn(8, 3, 4, generator=g)
    scores = torch.cat([(u * p).sum(1)[None], torch.einsum("bnd,bd->nb", n, u)]).requires_grad_(True)
    value, grad = loss.value_and_grad(scores.detach().clone())
    # the same loss through __call__ and autograd, as a function of the scores
    pos_s, neg_s = scores[0], scores[1:].T
    unit = torch.ones(8, 1)
    ref = loss(unit, pos_s[:, None], neg_s[:, :, None])  # dot with a 1-d unit vector = the score
    ref.backward()
    torch.testing.assert_close(value, ref.detach())
    torch.testing.assert_close(grad, scores.grad)


def test_per_epoch_aggregation_uses_mean_of_train_items():
    table = torch.tensor([[1.0, 1.0], [2.0, 0.0], [5.0, 5.0]])
    items = torch.tensor([[0.0, 2.0], [4.0, 0.0], [1.0, 1.0]])
    train = UserItems.from_pairs(np.array([[0, 0], [0, 1], [1, 2]]), 3, 3)
    per_epoch_aggregation(table, items, train, 0.5)
    # user 0: 0.5*[1,1] + 0.5*mean([0,2],[4,0]) = [0.5,0.5]+[1,0.5]; user 2 has no items: unchanged
    torch.testing.assert_close(table, torch.tensor([[1.5, 1.0], [1.5, 0.5], [5.0, 5.0]]))


def test_direct_fused_adam_step_is_bitwise_optimizer_step():
    from onebp.model.optimizer import adam_step, make_adam

    g = torch.Generator().manual_seed(0)
    a = torch.nn.Parameter(torch.randn(7, 3, generator=g))
    b = torch.nn.Parameter(a.detach().clone())
    opt_a, opt_b = make_adam([a], 0.01, 1e-3), make_adam([b], 0.01, 1e-3)
    for _ in range(5):
        grad = torch.randn(7, 3, generator=g)
        a.grad, b.grad = grad.clone(), grad.clone()
        opt_a.step()
        adam_step(opt_b)
    assert torch.equal(a, b)
    assert torch.equal(opt_a.state[a]["exp_avg_sq"], opt_b.state[b]["exp_avg_sq"])
    assert opt_a.state[a]["step"] == opt_b.state[b]["step"] == 5
