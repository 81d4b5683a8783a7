"""Synthetic implicit-feedback data with planted structure, for tests and quick runs.

Users and items get latent factors in ``rank`` dimensions; each item also gets a popularity bias
drawn from a power law (Zipf-like, exponent ``popularity_exponent``). A user's interactions are a
sample without replacement from ``softmax(signal * <u, v> + log popularity)``, so a model that
learns the factors beats a most-popular ranking by a wide margin, while popularity alone is
informative too (as in real data).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from onebp.data.split_format import Split
from onebp.data.splitting import random_ratio_split
from onebp.errors import UserError


@dataclass(frozen=True)
class SyntheticConfig:
    n_users: int = 300
    n_items: int = 200
    rank: int = 4
    mean_degree: float = 20.0
    min_degree: int = 5
    signal: float = 3.0
    popularity_exponent: float = 1.0
    test_ratio: float = 0.2
    valid_ratio: float = 0.1
    seed: int = 0

    def check(self) -> None:
        """Refuse numbers that would crash the generator or produce a split no run can use; the
        message names the ``onebp data synth`` flag (``--n-users`` for ``n_users``)."""

        def flag(name: str) -> str:
            return "--" + name.replace("_", "-")

        for name in ("n_users", "n_items", "rank", "min_degree"):
            if getattr(self, name) < 1:
                raise UserError(f"{flag(name)} must be >= 1, got {getattr(self, name)}")
        if self.seed < 0:
            raise UserError(f"--seed must be >= 0, got {self.seed}")
        # Degrees are geometric with p = 1 / mean_degree, which needs 0 < p <= 1.
        if not (math.isfinite(self.mean_degree) and self.mean_degree >= 1):
            raise UserError(f"--mean-degree must be a finite number >= 1, got {self.mean_degree}")
        for name in ("signal", "popularity_exponent"):
            if not math.isfinite(getattr(self, name)):
                raise UserError(f"{flag(name)} must be a finite number, got {getattr(self, name)}")
        # test 0 would leave an empty test part (a run with NaN metrics); valid 0 means no validation part.
        if not 0.0 < self.test_ratio < 1.0:
            raise UserError(f"--test-ratio must be in (0, 1), got {self.test_ratio}")
        if not 0.0 <= self.valid_ratio < 1.0:
            raise UserError(f"--valid-ratio must be in [0, 1), got {self.valid_ratio}")


def synthetic_interactions(cfg: SyntheticConfig) -> np.ndarray:
    """(n, 2) unique (user, item) pairs with planted latent structure and power-law popularity."""
    rng = np.random.default_rng(cfg.seed)
    users = rng.standard_normal((cfg.n_users, cfg.rank)) / np.sqrt(cfg.rank)
    items = rng.standard_normal((cfg.n_items, cfg.rank))
    ranks = rng.permutation(cfg.n_items) + 1
    log_pop = -cfg.popularity_exponent * np.log(ranks)
    degrees = np.clip(
        rng.geometric(1.0 / cfg.mean_degree, size=cfg.n_users), cfg.min_degree, cfg.n_items // 2
    )
    out = []
    # Logits a block of users at a time: the full users × items matrix (8 bytes a cell) would not fit
    # in memory for large sizes; each row is the same product either way.
    block = max(1, LOGIT_BLOCK_CELLS // cfg.n_items)
    for start in range(0, cfg.n_users, block):
        logits = cfg.signal * users[start:start + block] @ items.T + log_pop[None, :]
        for u, row in enumerate(logits, start):
            # Gumbel top-k == sampling without replacement proportional to softmax(logits).
            g = row + rng.gumbel(size=cfg.n_items)
            chosen = np.argpartition(-g, degrees[u])[: degrees[u]]
            out.append(np.stack([np.full(len(chosen), u), chosen], axis=1))
    return np.concatenate(out).astype(np.int64)


#: logits computed at once by :func:`synthetic_interactions` (cells; 8 bytes each: 256 MB)
LOGIT_BLOCK_CELLS = 1 << 25


def synthetic_split(cfg: SyntheticConfig = SyntheticConfig()) -> Split:
    """A train/valid/test split of :func:`synthetic_interactions` (random per-user ratios)."""
    pairs = synthetic_interactions(cfg)
    rng = np.random.default_rng([cfg.seed, 1])
    train, test = random_ratio_split(pairs, cfg.n_users, cfg.test_ratio, rng)
    parts = {"test": test}
    if cfg.valid_ratio > 0:
        train, valid = random_ratio_split(train, cfg.n_users, cfg.valid_ratio, rng)
        parts["valid"] = valid
    parts["train"] = train
    return Split(
        n_users=cfg.n_users,
        n_items=cfg.n_items,
        parts=parts,
        name=f"synthetic-{cfg.seed}",
        provenance={"source": "synthetic", "config": cfg.__dict__},
    )
