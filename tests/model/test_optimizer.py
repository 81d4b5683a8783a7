"""Adam's fast step: bitwise equal to torch's optimizer.step()."""

from __future__ import annotations

import torch


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
