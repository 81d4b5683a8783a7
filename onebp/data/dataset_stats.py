"""Statistics of prepared splits (``stats.json``) and the ``onebp data stats`` table."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from onebp.atomic import atomic_write_json
from onebp.data.catalog import CATALOG
from onebp.data.split_format import PARTS, Split

STATS_FILE = "stats.json"


def _summary(degrees: np.ndarray) -> dict[str, float]:
    if len(degrees) == 0:
        return {"min": 0, "median": 0.0, "mean": 0.0, "max": 0}
    return {
        "min": int(degrees.min()),
        "median": float(np.median(degrees)),
        "mean": round(float(degrees.mean()), 4),
        "max": int(degrees.max()),
    }


def _part_stats(pairs: np.ndarray, n_users: int, n_items: int) -> dict[str, Any]:
    du = np.bincount(pairs[:, 0], minlength=n_users) if len(pairs) else np.zeros(n_users, np.int64)
    di = np.bincount(pairs[:, 1], minlength=n_items) if len(pairs) else np.zeros(n_items, np.int64)
    # Degree summaries over the users/items present in the part (zeros would swamp held-out parts).
    return {
        "n_users": int((du > 0).sum()),
        "n_items": int((di > 0).sum()),
        "n_interactions": int(len(pairs)),
        "density": float(len(pairs) / (n_users * n_items)) if n_users and n_items else 0.0,
        "user_degree": _summary(du[du > 0]),
        "item_degree": _summary(di[di > 0]),
    }


def split_stats(split: Split, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Counts, density and degree summaries per part and over all parts together."""
    parts = {name: np.asarray(split.parts[name]).reshape(-1, 2) for name in PARTS if name in split.parts}
    every = np.concatenate(list(parts.values())) if parts else np.empty((0, 2), np.int64)
    out = {
        "n_users": int(split.n_users),
        "n_items": int(split.n_items),
        "parts": {name: _part_stats(p, split.n_users, split.n_items) for name, p in parts.items()},
        "all": _part_stats(every, split.n_users, split.n_items),
    }
    if extra:
        out["dropped"] = extra
    return out


def write_stats(out_dir: str | os.PathLike, stats: dict[str, Any]) -> None:
    atomic_write_json(Path(out_dir) / STATS_FILE, stats)


def _published(meta: dict[str, Any]) -> dict[str, int | None]:
    prov = meta.get("provenance", {})
    ds = CATALOG.get(str(prov.get("dataset", "")))
    exp = ds.expected if ds else None
    pub = {
        "users": exp.n_users if exp else None,
        "items": exp.n_items if exp else None,
        "interactions": exp.n_interactions if exp else None,
        "train": None,
        "test": None,
    }
    # Per-part figures only make sense for the published split itself.
    if exp and prov.get("split", {}).get("kind") == "given" and not prov.get("split", {}).get("valid_ratio"):
        pub["train"], pub["test"] = exp.n_train, exp.n_test
    # Published figures describe the unfiltered data: a k-core or rating threshold changes them.
    params = prov.get("preprocessing", {})
    if params.get("kcore_user") or params.get("kcore_item") or params.get("min_rating") is not None:
        pub = dict.fromkeys(pub)
    return pub


def stats_rows(root: str | os.PathLike) -> list[dict[str, Any]]:
    """One row per prepared split (a folder with meta.json) under ``root``, with published figures."""
    rows = []
    for meta_path in sorted(Path(root).rglob("meta.json")):
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if not str(meta.get("format", "")).startswith("onebp-split/"):
            continue
        parts = meta.get("parts", {})
        ours = {
            "users": meta.get("n_users"),
            "items": meta.get("n_items"),
            "interactions": sum(parts.values()),
            "train": parts.get("train"),
            "test": parts.get("test"),
        }
        pub = _published(meta)
        diffs = [f"{k} {ours[k]:,} vs {pub[k]:,}" for k in ours if pub[k] is not None and ours[k] != pub[k]]
        checked = any(v is not None for v in pub.values())
        prov = meta.get("provenance", {})
        rows.append(
            {
                "split": str(meta_path.parent.relative_to(root)) if meta_path.parent != Path(root) else ".",
                "dataset": prov.get("dataset", meta.get("name")),
                "kind": prov.get("split", {}).get("kind", ""),
                **{k: ours[k] for k in ("users", "items", "train")},
                "valid": parts.get("valid", 0),
                **{k: ours[k] for k in ("test", "interactions")},
                "published (users/items/inter.)": "/".join(
                    "-" if pub[k] is None else f"{pub[k]:,}" for k in ("users", "items", "interactions")
                )
                + (f" ({pub['train']:,}+{pub['test']:,})" if pub["train"] is not None else ""),
                "check": ("DIFF: " + "; ".join(diffs)) if diffs else ("ok" if checked else "-"),
                "unverified": "yes" if prov.get("allow_unverified") else "",
            }
        )
    return rows


def stats_table(root: str | os.PathLike) -> str:
    from tabulate import tabulate

    rows = stats_rows(root)
    if not rows:
        return f"no prepared splits (meta.json) under {root}"
    return tabulate(rows, headers="keys", intfmt=",", tablefmt="simple")
