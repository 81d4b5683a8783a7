"""Losses: fast paths equal to the plain formulas."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from onebp.model.losses import CosineContrastive, DirectAU


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
