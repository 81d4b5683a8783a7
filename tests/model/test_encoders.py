"""Shared modules added for the baselines: losses, fast paths equal to the plain formulas."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from onebp.methods.one_shot import EASE
from onebp.model.encoders import GraphSpec, LightGCN, normalized_adjacency
from onebp.model.interactions import UserItems
from onebp.model.losses import CosineContrastive, DirectAU
from onebp.model.momentum import momentum_update


def test_directau_uniformity_equals_the_pdist_formula():
    g = torch.Generator().manual_seed(0)
    x = F.normalize(torch.randn(50, 8, generator=g), dim=1)
    x = torch.cat([x, x[:3]])  # duplicated rows, as repeated users in a batch
    ref = torch.pdist(x, p=2).pow(2).mul(-2).exp().mean().log()
    torch.testing.assert_close(DirectAU().uniformity(x), ref, rtol=1e-5, atol=1e-6)


def test_ccl_with_all_items_equals_the_gathered_loss():
    g = torch.Generator().manual_seed(1)
    u = torch.randn(16, 6, generator=g, requires_grad=True)
    items = torch.randn(30, 6, generator=g, requires_grad=True)
    pos = torch.randint(30, (16,), generator=g)
    neg = torch.randint(30, (16, 9), generator=g)
    loss = CosineContrastive(margin=0.1, negative_weight=5.0)
    a = loss(u, items[pos], items[neg])
    ga = torch.autograd.grad(a, [u, items])
    b = loss.with_all_items(u, items[pos], items, neg)
    gb = torch.autograd.grad(b, [u, items])
    torch.testing.assert_close(a, b)
    for x, y in zip(ga, gb, strict=True):
        torch.testing.assert_close(x, y)


def test_lightgcn_propagation_and_gradient_match_a_dense_reference():
    pairs = np.array([[0, 0], [0, 2], [1, 1], [2, 2], [2, 3], [1, 3]])
    graph = GraphSpec(3, 4, pairs)
    enc = LightGCN(3, 4, 5, torch.Generator().manual_seed(0), torch.device("cpu"), graph, n_layers=3)
    users, items = enc.propagate()
    loss = users.pow(2).sum() + items[[1, 3]].sum()
    loss.backward()
    dense = normalized_adjacency(graph, torch.device("cpu")).to_dense()
    # symmetric normalisation D^-1/2 A D^-1/2 of the bipartite graph
    a = torch.zeros(7, 7)
    a[pairs[:, 0], pairs[:, 1] + 3] = 1
    a = a + a.T
    d = a.sum(1).pow(-0.5)
    torch.testing.assert_close(dense, d[:, None] * a * d[None, :])
    x = torch.cat([enc.user_table.detach(), enc.item_table.detach()]).requires_grad_(True)
    total, h = x, x
    for _ in range(3):
        h = dense @ h
        total = total + h
    out = total / 4  # α_k = 1/(K+1)
    torch.testing.assert_close(torch.cat([users, items]), out)
    (out[:3].pow(2).sum() + out[3:][[1, 3]].sum()).backward()
    torch.testing.assert_close(torch.cat([enc.user_table.grad, enc.item_table.grad]), x.grad)


def test_momentum_update_is_an_exponential_moving_average():
    t, o = torch.ones(3), torch.zeros(3)
    momentum_update([t], [o], 0.9)
    torch.testing.assert_close(t, torch.full((3,), 0.9))


def test_ease_closed_form():
    pairs = np.array([[0, 0], [0, 1], [1, 1], [1, 2], [2, 0], [2, 2], [3, 1]])
    train = UserItems.from_pairs(pairs, 4, 3)
    model = EASE(train, lam=2.0)
    model.fit()
    x = torch.zeros(4, 3, dtype=torch.float64)
    x[pairs[:, 0], pairs[:, 1]] = 1
    p = torch.linalg.inv(x.T @ x + 2.0 * torch.eye(3, dtype=torch.float64))
    b = torch.eye(3, dtype=torch.float64) - p / p.diagonal()[None, :]
    torch.testing.assert_close(model.B.double(), b, rtol=1e-5, atol=1e-6)
    assert torch.all(model.B.diagonal() == 0)
    torch.testing.assert_close(model.score_users(torch.tensor([0, 3])), (x[[0, 3]] @ b).float())


def test_init_table_normal_std_or_xavier_by_default():
    from onebp.model.encoders import init_table, xavier_table

    cpu = torch.device("cpu")
    t = init_table(4000, 64, torch.Generator().manual_seed(0), cpu, std=0.1).detach()
    assert abs(float(t.std()) - 0.1) < 0.002 and abs(float(t.mean())) < 0.002
    x = init_table(300, 16, torch.Generator().manual_seed(1), cpu)
    torch.testing.assert_close(x, xavier_table(300, 16, torch.Generator().manual_seed(1), cpu))


def _resolved(method: str, dataset: str = "any", **overrides):
    from onebp.config import resolve_config
    from onebp.methods.registry import get_method

    m = get_method(method)
    return resolve_config(method, m.params, m.defaults, dataset, overrides)


def test_baseline_defaults_follow_their_official_code():
    lgc = _resolved("lightgcn")  # gusye1234/LightGCN-PyTorch: N(0, 0.1) tables, decay 1e-4, batch 2048
    assert (lgc.params["init_std"], lgc.params["ego_l2"], lgc.l2, lgc.lr, lgc.batch_size, lgc.dim) == (
        0.1, 1e-4, 0.0, 1e-3, 2048, 64)
    buir = _resolved("buir")  # BUIR author code: Adam lr 1e-3, weight decay 1e-4, τ 0.995, batch 1024
    assert (buir.l2, buir.lr, buir.params["tau"], buir.batch_size, buir.dim) == (1e-4, 1e-3, 0.995, 1024, 250)
    dau = _resolved("directau")  # DirectAU README/RecBole: lr 1e-3, batch 256, dim 64, in-batch only
    assert (dau.lr, dau.batch_size, dau.dim, dau.n_negatives) == (1e-3, 256, 64, 0)


def test_lightgcn_tables_start_from_the_configured_normal():
    pairs = np.array([[u, i] for u in range(40) for i in range(u % 7, 60, 7)])
    graph = GraphSpec(40, 60, pairs)
    enc = LightGCN(40, 60, 128, torch.Generator().manual_seed(0), torch.device("cpu"), graph, init_std=0.1)
    table = torch.cat([enc.user_table, enc.item_table]).detach()
    assert abs(float(table.std()) - 0.1) < 0.005


def test_onebp_directau_gamma_is_a_setting():
    from onebp.methods.conformance import battery_split, make_trainer
    from onebp.methods.registry import get_method

    assert _resolved("onebp-directau", gamma="0.3").params["gamma"] == 0.3
    assert _resolved("onebp-directau").params["gamma"] == 1.0
    trainer = make_trainer(get_method("onebp-directau"), battery_split(), gamma=0.3)
    loss = trainer.model.strategy.loss
    assert isinstance(loss, DirectAU) and loss.gamma == 0.3
