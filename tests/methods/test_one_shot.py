"""Models fitted in one shot (EASE): the closed form, and a refusal before allocating what does not fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from onebp.errors import UserError
from onebp.methods.one_shot import EASE
from onebp.model.interactions import UserItems


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


def test_ease_is_refused_before_allocating(tiny_split_dir, monkeypatch):
    from onebp.config import resolve_config
    from onebp.data.split_format import load_split
    from onebp.methods.one_shot import check_ease_fits, ease_memory_bytes
    from onebp.methods.registry import get_method
    from onebp.training.trainer import Trainer

    assert ease_memory_bytes(40981) / 2**30 == pytest.approx(43.8, abs=0.1)  # Gowalla: 28 bytes per entry
    with pytest.raises(UserError, match=r"ease: 40981 items need about 43.8 GiB.*method_resources.ease"):
        check_ease_fits(40981, 16000 * 2**20, "its jobs' configured memory (mem_mb 16000)")
    split = load_split(tiny_split_dir)
    m = get_method("ease")
    cfg = resolve_config(m.name, m.params, m.defaults, split.name, {"device": "cpu"})
    monkeypatch.setenv("ONEBP_MEMORY_MB", "0.1")  # 104,857 bytes < 28 x 80^2
    with pytest.raises(UserError, match=r"ease: 80 items need .*mem_mb 0.1"):
        Trainer(m, cfg, split, log=lambda msg: None)
    monkeypatch.setenv("ONEBP_MEMORY_MB", "1")
    Trainer(m, cfg, split, log=lambda msg: None)  # fits: builds
