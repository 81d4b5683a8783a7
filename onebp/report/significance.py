"""Paired significance tests of a method against the reference (OneBP).

Two tests, both paired and two-sided:
- over seeds: ``scipy.stats.ttest_rel`` on the per-seed values of runs with the same seed;
- over users: ``scipy.stats.wilcoxon`` on per-user test values (``per_user_test.npz``), each user's
  value averaged over the seeds both methods ran, users present in every such run.
A test that cannot be computed (fewer than 2 pairs, all differences zero) gives p = 1 (not
significant) rather than NaN, so "no marker" always means "no evidence of a difference".
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

SEED_TEST = "paired t-test over seeds (scipy.stats.ttest_rel)"
USER_TEST = "Wilcoxon signed-rank test over users on per-user values averaged over seeds (scipy.stats.wilcoxon)"


def paired_seed_p(a: pd.Series, b: pd.Series) -> float:
    """``a``, ``b`` indexed by seed; pairs on common seeds."""
    common = a.index.intersection(b.index)
    if len(common) < 2:
        return 1.0
    x, y = a.loc[common].to_numpy(float), b.loc[common].to_numpy(float)
    d = x - y
    if np.allclose(d, d[0]):  # constant differences: the t statistic is undefined
        return 1.0 if np.isclose(d[0], 0.0) else 0.0
    return float(stats.ttest_rel(x, y).pvalue)


@lru_cache(maxsize=256)
def _per_user(run_dir: str) -> dict[str, pd.Series]:
    path = Path(run_dir) / "per_user_test.npz"
    if not path.exists():
        return {}
    with np.load(path) as z:
        users = z["user"]
        return {k: pd.Series(z[k], index=users) for k in z.files if k != "user"}


def per_user_mean(run_dirs: Sequence[str], key: str) -> pd.Series | None:
    """Per-user value of ``key`` averaged over runs (users present in all of them)."""
    series = [_per_user(str(d)).get(key) for d in run_dirs]
    if not series or any(s is None for s in series):
        return None
    return pd.concat(series, axis=1, join="inner").mean(axis=1)


def paired_user_p(ref_runs: Sequence[str], other_runs: Sequence[str], key: str) -> float:
    a, b = per_user_mean(ref_runs, key), per_user_mean(other_runs, key)
    if a is None or b is None:
        return 1.0
    a, b = a.align(b, join="inner")
    d = (a - b).to_numpy()
    if len(d) < 2 or np.allclose(d, 0.0):
        return 1.0
    return float(stats.wilcoxon(a.to_numpy(), b.to_numpy()).pvalue)
