"""Adam: ``FusedAdam`` (no ``torch.optim``, so no torch._dynamo import) is bitwise torch's
``Adam(fused=True)`` — parameters, state, state_dict, checkpoints and whole runs; ``adam_step`` on
torch's own Adam is bitwise its ``step()``."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from onebp.cli import main
from onebp.model import updates
from onebp.model.optimizer import FusedAdam, adam_step, make_adam

pytestmark = pytest.mark.skipif(not hasattr(torch, "_fused_adam_"), reason="torch without a fused Adam")


def stock_adam(params, lr, l2):
    """What make_adam returned before FusedAdam: torch's own fused Adam."""
    return torch.optim.Adam(params, lr=lr, weight_decay=l2, fused=True)


def twin_parameters(seed: int = 0, device: str = "cpu") -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
    g = torch.Generator().manual_seed(seed)
    shapes = [(7, 3), (5,), (4, 2)]
    a = [torch.nn.Parameter(torch.randn(*s, generator=g).to(device)) for s in shapes]
    return a, [torch.nn.Parameter(p.detach().clone()) for p in a]


#: the CPU always; CUDA where there is one (marker cuda: benchmarks/gpu_check.sh runs these on a GPU)
DEVICES = ["cpu", pytest.param("cuda", marks=[
    pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")])]


def assert_same_state(torch_opt, fast_opt) -> None:
    ours, theirs = fast_opt.state_dict(), torch_opt.state_dict()
    assert ours["param_groups"] == theirs["param_groups"]  # settings, their order, the positions
    assert list(ours["state"]) == list(theirs["state"])  # the same parameters, in the same order
    for k, state in theirs["state"].items():
        assert list(ours["state"][k]) == list(state)
        for name, value in state.items():
            mine = ours["state"][k][name]
            assert mine.dtype == value.dtype and mine.device == value.device and torch.equal(mine, value), name


@pytest.mark.parametrize("device", DEVICES)
def test_fused_adam_is_bitwise_torchs_fused_adam_step_by_step(device):
    a, b = twin_parameters(device=device)
    ref, fast = stock_adam(a, 0.01, 1e-3), make_adam(b, 0.01, 1e-3)
    assert isinstance(fast, FusedAdam)
    g = torch.Generator().manual_seed(1)
    for step in range(8):
        for pa, pb in zip(a, b, strict=True):
            if step < 3 and pa.dim() == 1:  # a parameter without gradient gets no state (yet)
                pa.grad = pb.grad = None
                continue
            grad = torch.randn(pa.shape, generator=g).to(device)
            pa.grad, pb.grad = grad.clone(), grad.clone()
        ref.step()
        fast.step()
        for pa, pb in zip(a, b, strict=True):
            assert torch.equal(pa, pb), step
        assert_same_state(ref, fast)
        ref.zero_grad(set_to_none=True)
        fast.zero_grad(set_to_none=True)
        assert all(p.grad is None for p in b)
    assert fast.state[b[0]]["step"] == 8 and fast.state[b[1]]["step"] == 5


def test_state_dicts_load_across_the_two_implementations():
    a, b = twin_parameters()
    ref, fast = stock_adam(a, 0.02, 0.0), make_adam(b, 0.02, 0.0)
    for p in (*a, *b):
        p.grad = torch.ones_like(p)
    ref.step()
    fast.step()
    # torch's state into a fresh FusedAdam, ours into a fresh torch Adam: both continue identically
    c, d = twin_parameters()
    for p_from, p_to in zip((*a, *b), (*c, *d), strict=True):
        p_to.data.copy_(p_from.data)
    fast2, ref2 = FusedAdam(c, 0.5, 0.5), stock_adam(d, 0.5, 0.5)  # settings come from the state dict
    fast2.load_state_dict(ref.state_dict())
    ref2.load_state_dict(fast.state_dict())
    assert fast2.param_groups[0]["lr"] == 0.02 and fast2.param_groups[0]["params"] == c
    for p in (*c, *d):
        p.grad = torch.full_like(p, 0.5)
    fast2.step()
    ref2.step()
    for pc, pd in zip(c, d, strict=True):
        assert torch.equal(pc, pd)
    assert_same_state(ref2, fast2)


def test_direct_fused_adam_step_is_bitwise_optimizer_step():
    g = torch.Generator().manual_seed(0)
    a = torch.nn.Parameter(torch.randn(7, 3, generator=g))
    b = torch.nn.Parameter(a.detach().clone())
    opt_a, opt_b = stock_adam([a], 0.01, 1e-3), stock_adam([b], 0.01, 1e-3)
    for _ in range(5):
        grad = torch.randn(7, 3, generator=g)
        a.grad, b.grad = grad.clone(), grad.clone()
        opt_a.step()
        adam_step(opt_b)
    assert torch.equal(a, b)
    assert torch.equal(opt_a.state[a]["exp_avg_sq"], opt_b.state[b]["exp_avg_sq"])
    assert opt_a.state[a]["step"] == opt_b.state[b]["step"] == 5


def _tensors_equal(x, y, where: str = "") -> None:
    if isinstance(x, torch.Tensor):
        assert x.dtype == y.dtype and torch.equal(x, y), where
    elif isinstance(x, dict):
        assert list(x) == list(y), where
        for k in x:
            _tensors_equal(x[k], y[k], f"{where}.{k}")
    elif isinstance(x, (list, tuple)):
        assert len(x) == len(y), where
        for i, (u, v) in enumerate(zip(x, y, strict=True)):
            _tensors_equal(u, v, f"{where}[{i}]")


def _without_timing(row: dict) -> dict:
    return {k: v for k, v in row.items() if not k.startswith(("seconds_", "peak_"))}


@pytest.mark.parametrize("method", ["onebp", "twobp", "bpr-mf"])
def test_a_short_run_is_bitwise_the_run_with_torchs_adam(method, tiny_split_dir, tmp_path, monkeypatch, capsys):
    args = ["--data", str(tiny_split_dir), "--method", method, "--set", "epochs=4", "--set", "eval_every=2",
            "--set", "batch_size=64", "--set", "dim=8", "--set", "threads=1", "--set", "checkpoint_minutes=0"]
    assert main(["train", *args, "--out", str(tmp_path / "fast")]) == 0
    with monkeypatch.context() as m:
        m.setattr(updates, "make_adam", stock_adam)
        m.setattr(updates, "adam_step", lambda optimizer: optimizer.step())
        assert main(["train", *args, "--out", str(tmp_path / "stock")]) == 0
    capsys.readouterr()
    fast, stock = tmp_path / "fast", tmp_path / "stock"
    curves = [[_without_timing(r) for r in csv.DictReader(open(d / "curve.csv"))] for d in (fast, stock)]
    assert curves[0] == curves[1] and len(curves[0]) == 4 and curves[0][-1]["valid/ndcg@20"]
    metrics = [json.loads((d / "metrics.json").read_text()) for d in (fast, stock)]
    assert metrics[0]["test"] == metrics[1]["test"] and metrics[0]["valid"] == metrics[1]["valid"]
    users = [np.load(d / "per_user_test.npz") for d in (fast, stock)]
    assert sorted(users[0].files) == sorted(users[1].files)
    for name in users[0].files:
        assert users[0][name].tobytes() == users[1][name].tobytes(), name
    ckpt = [torch.load(d / "checkpoint.pt", weights_only=False) for d in (fast, stock)]
    _tensors_equal(ckpt[0]["model"], ckpt[1]["model"], "model")  # weights and Adam state
    _tensors_equal(ckpt[0]["generator"], ckpt[1]["generator"], "generator")
    assert ckpt[0]["model"]["strategy"]["optimizer"]["param_groups"] == \
        ckpt[1]["model"]["strategy"]["optimizer"]["param_groups"]
