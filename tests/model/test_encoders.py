"""Encoders: LightGCN propagation against a dense reference, table initialisation."""

from __future__ import annotations

import numpy as np
import torch

from onebp.model.encoders import GraphSpec, LightGCN, normalized_adjacency


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


def test_init_table_normal_std_or_xavier_by_default():
    from onebp.model.encoders import init_table, xavier_table

    cpu = torch.device("cpu")
    t = init_table(4000, 64, torch.Generator().manual_seed(0), cpu, std=0.1).detach()
    assert abs(float(t.std()) - 0.1) < 0.002 and abs(float(t.mean())) < 0.002
    x = init_table(300, 16, torch.Generator().manual_seed(1), cpu)
    torch.testing.assert_close(x, xavier_table(300, 16, torch.Generator().manual_seed(1), cpu))


def test_lightgcn_tables_start_from_the_configured_normal():
    pairs = np.array([[u, i] for u in range(40) for i in range(u % 7, 60, 7)])
    graph = GraphSpec(40, 60, pairs)
    enc = LightGCN(40, 60, 128, torch.Generator().manual_seed(0), torch.device("cpu"), graph, init_std=0.1)
    table = torch.cat([enc.user_table, enc.item_table]).detach()
    assert abs(float(table.std()) - 0.1) < 0.005
