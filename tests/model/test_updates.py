"""OneBP / TwoBP update strategies: no user gradient under OneBP, users moved toward the updated items,
fused gradients == autograd."""

from __future__ import annotations

import copy

import pytest
import torch

from onebp.model.encoders import MF
from onebp.model.losses import BPR, InfoNCE
from onebp.model.updates import Backprop, OneBP

BETA = 0.99


def make_encoder(n_users=6, n_items=9, dim=4, seed=0) -> MF:
    g = torch.Generator().manual_seed(seed)
    return MF(n_users, n_items, dim, g, torch.device("cpu"))


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
