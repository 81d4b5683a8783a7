"""BUIR's momentum target."""

from __future__ import annotations

import torch

from onebp.model.momentum import momentum_update


def test_momentum_update_is_an_exponential_moving_average():
    t, o = torch.ones(3), torch.zeros(3)
    momentum_update([t], [o], 0.9)
    torch.testing.assert_close(t, torch.full((3,), 0.9))
