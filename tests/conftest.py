"""Shared fixtures: tiny synthetic splits written to a temporary directory (no network, no data
from outside the repository)."""

from __future__ import annotations

from pathlib import Path

import pytest

from onebp.data.split_format import save_split
from onebp.data.synthetic import SyntheticConfig, synthetic_split


@pytest.fixture(scope="session")
def tiny_split_dir(tmp_path_factory) -> Path:
    """120 users × 80 items, train/valid/test, planted structure."""
    out = tmp_path_factory.mktemp("splits") / "tiny"
    save_split(synthetic_split(SyntheticConfig(n_users=120, n_items=80, mean_degree=15, seed=0)), out)
    return out


@pytest.fixture(scope="session")
def tiny_split_no_valid_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("splits") / "tiny-no-valid"
    save_split(synthetic_split(SyntheticConfig(n_users=120, n_items=80, mean_degree=15, valid_ratio=0.0,
                                               seed=0)), out)
    return out
