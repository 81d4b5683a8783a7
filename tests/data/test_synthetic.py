"""The synthetic generator: its output does not depend on how many users' logits are computed at once
(the block only bounds memory), and it keeps its planted invariants."""

from __future__ import annotations

import numpy as np
import pytest

import onebp.data.synthetic as synthetic
from onebp.data.synthetic import SyntheticConfig, synthetic_interactions

CONFIGS = [SyntheticConfig(), SyntheticConfig(n_users=257, n_items=301, rank=8, seed=3),
           SyntheticConfig(n_users=20, n_items=15, mean_degree=4, min_degree=2)]


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("cells", [1, 7_000, 300 * 13])
def test_the_logit_block_size_does_not_change_the_data(monkeypatch, cfg: SyntheticConfig, cells: int) -> None:
    whole = synthetic_interactions(cfg)  # default block: every config here fits in one
    monkeypatch.setattr(synthetic, "LOGIT_BLOCK_CELLS", cells)  # one user per block, ragged blocks
    np.testing.assert_array_equal(synthetic_interactions(cfg), whole)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_pairs_are_unique_in_range_and_degrees_within_bounds(cfg: SyntheticConfig) -> None:
    pairs = synthetic_interactions(cfg)
    assert pairs.dtype == np.int64 and pairs.shape[1] == 2
    assert len(np.unique(pairs, axis=0)) == len(pairs)
    assert pairs[:, 0].min() >= 0 and pairs[:, 0].max() < cfg.n_users
    assert pairs[:, 1].min() >= 0 and pairs[:, 1].max() < cfg.n_items
    degrees = np.bincount(pairs[:, 0], minlength=cfg.n_users)
    assert degrees.min() >= min(cfg.min_degree, cfg.n_items // 2) and degrees.max() <= cfg.n_items // 2
