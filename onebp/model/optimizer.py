"""Adam as the update strategies use it: torch's fused Adam kernel, driven without ``torch.optim``.

Why not ``torch.optim.Adam`` itself: every public method of ``torch.optim.Optimizer`` (construction
included) is wrapped in ``torch._disable_dynamo``, whose first call imports ``torch._dynamo`` — with
sympy and most of ``torch.fx``, about 1.4 s of CPU per process, more than a short run trains. A
study is hundreds of short processes. ``FusedAdam`` calls the same kernel (``torch._fused_adam_``)
on the same state, created the same way and in the same layout, so every number is bitwise what
``torch.optim.Adam(..., fused=True)`` gives and a checkpoint's optimizer state is torch's format
(``tests/model/test_optimizer.py`` checks both, step by step). Where torch has no fused kernel for
the parameters' device, ``make_adam`` returns torch's own Adam (``foreach``), as before.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

BETAS = (0.9, 0.999)  # torch's defaults, as the official code uses them
EPS = 1e-8


def fused_kernel_supports(params: list[nn.Parameter]) -> bool:
    """Whether torch's fused Adam would accept these parameters (the check ``fused=True`` makes)."""
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
    except ImportError:
        return False
    devices = _get_fused_kernels_supported_devices()
    return hasattr(torch, "_fused_adam_") and all(
        p.device.type in devices and torch.is_floating_point(p) for p in params)


class FusedAdam:
    """``torch.optim.Adam(params, lr, weight_decay=l2, fused=True)``: the same update, state and
    ``state_dict`` (one parameter group; L2 added to the gradient, as torch's ``weight_decay``)."""

    def __init__(self, params: Iterable[nn.Parameter], lr: float, weight_decay: float) -> None:
        # torch's defaults for Adam, in torch's order: a state_dict compares equal to torch's
        self.defaults: dict[str, Any] = {
            "lr": lr, "betas": BETAS, "eps": EPS, "weight_decay": weight_decay, "amsgrad": False,
            "maximize": False, "foreach": None, "capturable": False, "differentiable": False,
            "fused": True, "decoupled_weight_decay": False,
        }
        self.param_groups: list[dict[str, Any]] = [{"params": list(params), **self.defaults}]
        self.state: dict[nn.Parameter, dict[str, torch.Tensor]] = {}

    @torch.no_grad()
    def step(self) -> None:
        group = self.param_groups[0]
        params = [p for p in group["params"] if p.grad is not None]
        for p in params:
            if p not in self.state:  # lazily, as torch does: only parameters that got a gradient
                self.state[p] = {
                    "step": torch.zeros((), dtype=torch.float32, device=p.device),
                    "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                    "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
                }
        beta1, beta2 = group["betas"]
        # one kernel call per (device, dtype), as torch groups them
        by_kind: dict[tuple[torch.device, torch.dtype], list[nn.Parameter]] = {}
        for p in params:
            by_kind.setdefault((p.device, p.dtype), []).append(p)
        for same in by_kind.values():
            states = [self.state[p] for p in same]
            steps = [s["step"] for s in states]
            torch._foreach_add_(steps, 1)
            torch._fused_adam_(
                same, [p.grad for p in same], [s["exp_avg"] for s in states],
                [s["exp_avg_sq"] for s in states], [], steps, amsgrad=False, lr=group["lr"],
                beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"],
                maximize=False, grad_scale=None, found_inf=None,
            )

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.param_groups[0]["params"]:
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.detach_().zero_()

    def state_dict(self) -> dict[str, Any]:
        """torch's layout: per-parameter state by position, the group's settings with positions."""
        group = self.param_groups[0]
        position = {id(p): i for i, p in enumerate(group["params"])}
        packed = {k: v for k, v in group.items() if k != "params"}
        packed["params"] = list(range(len(group["params"])))
        return {"state": {position[id(p)]: s for p, s in self.state.items()}, "param_groups": [packed]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Like torch's: the saved group settings, tensors cast to their parameter's device and
        dtype (``step`` stays float32, fused Adam's)."""
        group = self.param_groups[0]
        (saved,) = state_dict["param_groups"]
        if len(saved["params"]) != len(group["params"]):
            raise ValueError("loaded state dict contains a parameter group that doesn't match the size "
                             "of optimizer's group")
        by_position = dict(zip(saved["params"], group["params"], strict=True))
        state = {}
        for key, values in state_dict["state"].items():
            p = by_position[key]
            state[p] = {name: value.to(dtype=torch.float32 if name == "step" else p.dtype, device=p.device)
                        for name, value in values.items()}
        # the saved settings in their order, then defaults a state_dict of an older torch lacks
        new_group = {**saved, **{k: v for k, v in self.defaults.items() if k not in saved}}
        new_group["params"] = group["params"]
        self.param_groups, self.state = [new_group], state


def make_adam(params: list[nn.Parameter], lr: float, l2: float) -> FusedAdam | torch.optim.Adam:
    """Adam with L2 weight decay added to the gradient (torch's ``weight_decay``, as the official
    code): torch's fused kernel where the build has one for these parameters (``FusedAdam``), else
    torch's own Adam with the foreach implementation."""
    params = list(params)
    if fused_kernel_supports(params):
        return FusedAdam(params, lr=lr, weight_decay=l2)
    return torch.optim.Adam(params, lr=lr, weight_decay=l2, foreach=True)


def adam_step(optimizer: FusedAdam | torch.optim.Adam) -> None:
    """One optimizer step; for torch's own Adam with ``fused=True``, its kernel called directly once
    the state exists.

    ``Adam.step`` spends ~60 µs of Python around a ~25 µs kernel on an ML-100K-sized table, 5 ms
    (8 %) of a 78-batch epoch. This is the same kernel on the same state, bitwise equal to
    ``optimizer.step()`` (tested); anything unusual falls back. ``FusedAdam.step`` is this path.
    """
    if isinstance(optimizer, FusedAdam):
        optimizer.step()
        return
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
