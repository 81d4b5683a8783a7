"""Splitting interactions into train / valid / test parts.

(The data-pipeline issue extends this module with temporal, leave-one-out and `given` splits.)
"""

from __future__ import annotations

import numpy as np


def per_user_test_size(n: np.ndarray, ratio: float) -> np.ndarray:
    """Held-out items for a user with ``n`` interactions: ``round(ratio * n)`` (half away from zero),
    at most ``n - 1`` so every user keeps at least one training item, and 0 when ``n == 1``."""
    n = np.asarray(n, dtype=np.int64)
    size = np.floor(ratio * n + 0.5).astype(np.int64)
    return np.clip(size, 0, np.maximum(n - 1, 0))


def random_ratio_split(
    pairs: np.ndarray, n_users: int, ratio: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Per user, hold out a random ``per_user_test_size(n, ratio)`` of its interactions.

    Returns ``(kept, held_out)`` pair arrays. Vectorised: one random key per interaction, ranked
    within its user; the lowest-ranked ones are held out.
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if len(pairs) == 0:
        return pairs, pairs
    keys = rng.random(len(pairs))
    order = np.lexsort((keys, pairs[:, 0]))
    users = pairs[order, 0]
    counts = np.bincount(users, minlength=n_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(users)) - starts[users]
    held = rank < per_user_test_size(counts, ratio)[users]
    return pairs[order[~held]], pairs[order[held]]
