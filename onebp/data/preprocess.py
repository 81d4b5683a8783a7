"""Preprocessing: implicit conversion, de-duplication, iterative k-core, contiguous id remapping.

All steps are vectorised numpy/pandas; none loops in Python per interaction.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from onebp.atomic import atomic_write
from onebp.errors import UserError


def to_implicit(frame: pd.DataFrame, min_rating: float | None) -> pd.DataFrame:
    """Keep interactions with ``rating >= min_rating``; ``None`` keeps all (the paper's choice)."""
    if min_rating is None:
        return frame
    if "rating" not in frame.columns:
        raise UserError("--min-rating needs ratings, but this dataset's format has none")
    return frame[frame["rating"] >= min_rating].reset_index(drop=True)


def deduplicate(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (user, item). With timestamps the earliest interaction is kept (a re-rating is not
    a new event for a temporal split); otherwise the first in file order."""
    if "timestamp" in frame.columns:
        frame = frame.sort_values("timestamp", kind="stable")
    return frame.drop_duplicates(["user", "item"], keep="first").sort_index().reset_index(drop=True)


def kcore_mask(users: np.ndarray, items: np.ndarray, k_user: int, k_item: int) -> np.ndarray:
    """Boolean mask of the maximal subgraph where every user has ≥ ``k_user`` and every item
    ≥ ``k_item`` interactions (0 = no constraint on that side).

    Iterative: drop every edge of an under-degree user or item, recount, repeat until nothing
    changes. Each round is O(n) numpy; the number of rounds is small in practice. Removing an edge
    only lowers degrees, so anything removed is outside every subgraph with the property, and the
    fixed point is the maximal one (the union of all such subgraphs). Assumes unique (user, item).
    """
    users = np.asarray(users)
    items = np.asarray(items)
    keep = np.ones(len(users), dtype=bool)
    if (k_user <= 0 and k_item <= 0) or len(users) == 0:
        return keep
    u_idx = np.unique(users, return_inverse=True)[1].reshape(-1)
    i_idx = np.unique(items, return_inverse=True)[1].reshape(-1)
    n_u, n_i = int(u_idx.max()) + 1, int(i_idx.max()) + 1
    while True:
        du = np.bincount(u_idx[keep], minlength=n_u)
        di = np.bincount(i_idx[keep], minlength=n_i)
        bad = keep & ((du[u_idx] < k_user) | (di[i_idx] < k_item))
        if not bad.any():
            return keep
        keep &= ~bad


def kcore(frame: pd.DataFrame, k_user: int, k_item: int) -> pd.DataFrame:
    mask = kcore_mask(frame["user"].to_numpy(), frame["item"].to_numpy(), k_user, k_item)
    return frame[mask].reset_index(drop=True)


def remap_ids(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Replace user/item ids by contiguous 0-based ids in increasing order of the original id.

    Returns ``(frame, user_ids, item_ids)`` where ``user_ids[new] == original``.
    """
    user_ids, u_new = np.unique(frame["user"].to_numpy(), return_inverse=True)
    item_ids, i_new = np.unique(frame["item"].to_numpy(), return_inverse=True)
    out = frame.copy()
    out["user"] = u_new.reshape(-1).astype(np.int64)
    out["item"] = i_new.reshape(-1).astype(np.int64)
    return out, user_ids, item_ids


def write_id_maps(out_dir: str | os.PathLike, user_ids: np.ndarray, item_ids: np.ndarray) -> None:
    """``user_map.tsv`` and ``item_map.tsv``: header ``new_id<TAB>original_id``."""
    for name, ids in (("user_map.tsv", user_ids), ("item_map.tsv", item_ids)):
        body = "\n".join(f"{new}\t{orig}" for new, orig in enumerate(ids.tolist()))
        atomic_write(Path(out_dir) / name, "new_id\toriginal_id\n" + body + ("\n" if len(ids) else ""))
