"""Splitting interactions into train / valid / test parts.

Kinds: random per-user ratio (the paper's 80/20), temporal per-user ratio, leave-one-out (random or
latest) and ``given`` (a dataset's published train/test). Every kind can carve a validation part out
of train. Test-size rule for ratio splits: ``round(ratio * n)`` rounded half away from zero, at most
``n - 1`` (0 for ``n == 1``). The official OneBP split of ML-100K (``100k_train.csv``/``100k_test.csv``)
has exactly that many test items for all 943 users (checked; note that for ratio 0.2 and integer n,
0.2·n is never exactly x.5, so half-up and banker's rounding agree there, while floor and ceil
disagree for 367 and 381 users).
"""

from __future__ import annotations

import hashlib

import numpy as np

from onebp.data.split_format import canonical_pairs


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


# --- extensions: seeding, temporal, leave-one-out, given, validation carving -------------------------
#
# Conventions shared by every split kind:
# * Held-out sizes per user: ``per_user_test_size`` for ratio splits (round half away from zero,
#   at most n-1), exactly 1 for leave-one-out when the user has >= 2 interactions (else 0). So every
#   user of the input keeps at least one training interaction.
# * Validation is carved out of *train*, per user, with the same kind of rule as the test part:
#   random ratio (``ratio``, ``given``), latest ratio (``temporal``), one item (``loo-*``);
#   ``valid_ratio`` is a fraction of each user's training interactions.
# * ``given`` keeps published train/test files. Duplicates inside a part are dropped, test pairs also
#   in train are dropped, and users with no training interaction have their held-out interactions
#   dropped (a model cannot rank for them); all of these are counted in the returned info (-> stats).


def derive_rng(*key: object) -> np.random.Generator:
    """A generator seeded from e.g. ``(dataset, split, seed, purpose)`` through sha256, so the same key
    gives the same stream on every machine and Python version (unlike ``hash()``)."""
    digest = hashlib.sha256("\x1f".join(str(k) for k in key).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


def _latest_mask(users: np.ndarray, n_users: int, sizes: np.ndarray, key: np.ndarray, tie: np.ndarray) -> np.ndarray:
    """Per user, mark the ``sizes[u]`` interactions with the largest (key, tie) as held out."""
    held = np.zeros(len(users), dtype=bool)
    if len(users) == 0:
        return held
    order = np.lexsort((tie, key, users))
    u_sorted = users[order]
    ends = np.cumsum(np.bincount(users, minlength=n_users))
    from_end = ends[u_sorted] - 1 - np.arange(len(order))  # 0 = the user's latest interaction
    held[order] = from_end < sizes[u_sorted]
    return held


def ratio_mask(users: np.ndarray, n_users: int, ratio: float, rng: np.random.Generator) -> np.ndarray:
    """Random per-user ratio: hold out ``per_user_test_size(n, ratio)`` interactions chosen uniformly."""
    users = np.asarray(users, dtype=np.int64)
    sizes = per_user_test_size(np.bincount(users, minlength=n_users), ratio)
    return _latest_mask(users, n_users, sizes, rng.random(len(users)), np.zeros(len(users)))


def temporal_mask(
    users: np.ndarray, timestamps: np.ndarray, n_users: int, ratio: float, rng: np.random.Generator
) -> np.ndarray:
    """Temporal per-user ratio: hold out each user's latest ``per_user_test_size(n, ratio)``.

    Ties in timestamp are broken by a seeded random key, so no held-out interaction is ever earlier
    than a kept one of the same user (equal timestamps may fall on both sides of the boundary).
    """
    users = np.asarray(users, dtype=np.int64)
    sizes = per_user_test_size(np.bincount(users, minlength=n_users), ratio)
    return _latest_mask(users, n_users, sizes, np.asarray(timestamps), rng.random(len(users)))


def loo_mask(
    users: np.ndarray, n_users: int, rng: np.random.Generator, timestamps: np.ndarray | None = None
) -> np.ndarray:
    """Leave-one-out: one interaction per user with >= 2 (latest if ``timestamps`` given, ties broken
    at random as in :func:`temporal_mask`; otherwise uniformly random)."""
    users = np.asarray(users, dtype=np.int64)
    sizes = np.minimum(np.bincount(users, minlength=n_users), 2) - 1
    sizes = np.maximum(sizes, 0)
    noise = rng.random(len(users))
    if timestamps is None:
        return _latest_mask(users, n_users, sizes, noise, np.zeros(len(users)))
    return _latest_mask(users, n_users, sizes, np.asarray(timestamps), noise)


def _contains(haystack: np.ndarray, needles: np.ndarray) -> np.ndarray:
    """``np.isin(needles, haystack)`` through one sort and a binary search (faster for int keys)."""
    if len(haystack) == 0:
        return np.zeros(len(needles), dtype=bool)
    sorted_keys = np.sort(haystack)
    pos = np.minimum(np.searchsorted(sorted_keys, needles), len(sorted_keys) - 1)
    return sorted_keys[pos] == needles


# The split kinds; the command line, the dataset catalog and the workflow's config schema read
# (or are tested against) this tuple.
SPLIT_KINDS = ("ratio", "temporal", "loo-random", "loo-latest", "given")


def _unique_rows(pairs: np.ndarray, ts: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None, int]:
    if len(pairs) == 0:
        return pairs, ts, 0
    # First occurrence of each (user, item): stable sort of one int64 key per row.
    key = pairs[:, 0] * (int(pairs[:, 1].max()) + 1) + pairs[:, 1]
    order = np.argsort(key, kind="stable")
    ks = key[order]
    first = np.sort(order[np.concatenate([[True], ks[1:] != ks[:-1]])])
    return pairs[first], (ts[first] if ts is not None else None), len(pairs) - len(first)


def make_split(
    kind: str,
    pairs: np.ndarray,
    n_users: int,
    *,
    test_ratio: float = 0.2,
    valid_ratio: float = 0.0,
    rng_test: np.random.Generator,
    rng_valid: np.random.Generator,
    timestamps: np.ndarray | None = None,
    given_test: np.ndarray | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Split ``pairs`` (unique (user, item) rows) into ``train``/``test`` (+ ``valid`` if
    ``valid_ratio > 0``) by ``kind`` (one of :data:`SPLIT_KINDS`); for ``given``, ``pairs`` is the
    published train part and ``given_test`` the test part. Returns ``(parts, info)``; ``info`` counts
    what was dropped (see the conventions above)."""
    from onebp.errors import UserError

    if kind not in SPLIT_KINDS:
        raise UserError(f"unknown split kind {kind!r}; known: {', '.join(SPLIT_KINDS)}")
    if not 0.0 <= test_ratio < 1.0 or not 0.0 <= valid_ratio < 1.0:
        raise UserError(f"ratios must be in [0, 1): test {test_ratio}, valid {valid_ratio}")
    if kind in ("temporal", "loo-latest") and timestamps is None:
        raise UserError(f"split {kind!r} needs timestamps, and this dataset's format has none")
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    ts = None if timestamps is None else np.asarray(timestamps)
    info: dict[str, int] = {}
    if kind == "given":
        if given_test is None:
            raise UserError("split 'given' needs a dataset with published train and test files")
        train, ts, info["dropped_duplicate_train"] = _unique_rows(pairs, ts)
        test = canonical_pairs(given_test)
        info["dropped_duplicate_test"] = int(len(np.asarray(given_test).reshape(-1, 2)) - len(test))
        in_train = _contains(train[:, 0] * (1 << 32) + train[:, 1], test[:, 0] * (1 << 32) + test[:, 1])
        info["dropped_test_in_train"] = int(in_train.sum())
        test = test[~in_train]
    else:
        held = {
            "ratio": lambda: ratio_mask(pairs[:, 0], n_users, test_ratio, rng_test),
            "temporal": lambda: temporal_mask(pairs[:, 0], ts, n_users, test_ratio, rng_test),
            "loo-random": lambda: loo_mask(pairs[:, 0], n_users, rng_test),
            "loo-latest": lambda: loo_mask(pairs[:, 0], n_users, rng_test, ts),
        }[kind]()
        train, test = pairs[~held], pairs[held]
        ts = ts[~held] if ts is not None else None
    parts = {"train": train, "test": test}
    if valid_ratio > 0:
        u = train[:, 0]
        if kind == "temporal":
            vheld = temporal_mask(u, ts, n_users, valid_ratio, rng_valid)
        elif kind.startswith("loo"):
            vheld = loo_mask(u, n_users, rng_valid, ts if kind == "loo-latest" else None)
        else:
            vheld = ratio_mask(u, n_users, valid_ratio, rng_valid)
        parts["train"], parts["valid"] = train[~vheld], train[vheld]
    # Users with no training interaction (only possible with 'given'): drop their held-out rows.
    has_train = np.bincount(parts["train"][:, 0], minlength=n_users) > 0
    info["users_without_train"] = 0
    info["dropped_heldout_without_train"] = 0
    for name in ("valid", "test"):
        if name in parts and len(parts[name]):
            ok = has_train[parts[name][:, 0]]
            info["dropped_heldout_without_train"] += int((~ok).sum())
            info["users_without_train"] += int(len(np.unique(parts[name][~ok, 0])))
            parts[name] = parts[name][ok]
    return parts, info
