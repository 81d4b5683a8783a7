"""Adam as the update strategies use it, and its fast step (the same kernel on the same state)."""

from __future__ import annotations

import torch
from torch import nn


def make_adam(params: list[nn.Parameter], lr: float, l2: float) -> torch.optim.Adam:
    """Adam with L2 weight decay added to the gradient (torch's ``weight_decay``, as the official
    code), fused kernel where the build supports it."""
    try:
        return torch.optim.Adam(params, lr=lr, weight_decay=l2, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr, weight_decay=l2, foreach=True)


def adam_step(optimizer: torch.optim.Adam) -> None:
    """``optimizer.step()``, calling torch's fused Adam kernel directly once the state exists.

    ``Adam.step`` spends ~60 µs of Python around a ~25 µs kernel on an ML-100K-sized table, 5 ms
    (8 %) of a 78-batch epoch. This is the same kernel on the same state (so checkpoints stay
    torch's format), bitwise equal to ``optimizer.step()`` (tested); anything unusual falls back.
    """
    groups = optimizer.param_groups
    group = groups[0]
    fast = (
        len(groups) == 1 and group.get("fused") and not group["amsgrad"] and not group["maximize"]
        and not group.get("decoupled_weight_decay", False) and hasattr(torch, "_fused_adam_")
        and not torch.is_tensor(group["lr"])
    )
    params = [p for p in group["params"] if p.grad is not None]
    if not fast or not params or any(p not in optimizer.state for p in params):
        optimizer.step()
        return
    states = [optimizer.state[p] for p in params]
    steps = [s["step"] for s in states]
    torch._foreach_add_(steps, 1)
    beta1, beta2 = group["betas"]
    torch._fused_adam_(
        params, [p.grad for p in params], [s["exp_avg"] for s in states],
        [s["exp_avg_sq"] for s in states], [], steps, amsgrad=False, lr=group["lr"], beta1=beta1,
        beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"], maximize=False,
        grad_scale=None, found_inf=None,
    )
