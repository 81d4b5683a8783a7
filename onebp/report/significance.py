"""Paired significance tests of a method against the reference (OneBP).

Two tests, both paired and two-sided:
- over seeds: ``scipy.stats.ttest_rel`` on the per-seed values of runs with the same seed;
- over users: ``scipy.stats.wilcoxon`` on per-user test values (``per_user_test.npz``), each user's
  value averaged over the seeds both methods ran, users present in every such run.
A test that cannot be computed (fewer than 2 pairs, all differences zero) gives p = 1 (not
significant) rather than NaN, so "no marker" always means "no evidence of a difference".

Twins share their randomness (initial tables and sampling stream come from (dataset, seed)), so the
seed test pairs run s of one method with run s of the other: the pairs are twins.

Next to each p-value: the paired effect size over users — the mean over users of the per-user
difference (each user's value averaged over the paired seeds) — with a 95 % percentile bootstrap
confidence interval over users (``scipy.stats.bootstrap``, seeded, so the table is reproducible).
Within one table the p-values of each test are corrected together for multiple comparisons by
Holm–Bonferroni (``holm``). A method whose value does not change with the seed (mostpop, EASE:
``deterministic``) has no seed-to-seed variation to test: it is tested over users only.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from onebp.errors import UserError

SEED_TEST = "paired t-test over seeds (scipy.stats.ttest_rel)"
USER_TEST = "Wilcoxon signed-rank test over users on per-user values averaged over seeds (scipy.stats.wilcoxon)"
EFFECT = ("mean paired difference over users (per-user values averaged over the paired seeds) with a 95 % "
          "percentile bootstrap CI over users (scipy.stats.bootstrap)")
HOLM = "Holm–Bonferroni-corrected across the cells of this table (each test separately)"
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


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
        # Never a silent p = 1: a missing file is a run that did not finish, or a file a storage
        # plugin did not bring (the report rules declare it as an input).
        raise UserError(f"{path}: missing — the run's per-user test values, needed for the paired "
                        "tests over users (is the run finished, and its directory complete?)")
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


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (step-down; NaN entries are left out and stay NaN).

    Sorted ascending p_(1) ≤ … ≤ p_(m): adjusted p_(i) = max_{j ≤ i} min(1, (m − j + 1)·p_(j)); a
    hypothesis is rejected at level α exactly when its adjusted p-value is < α.
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out


def bootstrap_mean_ci(d: np.ndarray, confidence: float = 0.95, n_resamples: int = BOOTSTRAP_RESAMPLES,
                      seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``d`` (resampling its entries), seeded."""
    d = np.asarray(d, dtype=float)
    if len(d) < 2 or np.all(d == d[0]):
        return (float(d[0]), float(d[0])) if len(d) else (np.nan, np.nan)
    res = stats.bootstrap((d,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                          method="percentile", vectorized=True, rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def user_differences(ref_runs: Sequence[str], other_runs: Sequence[str], key: str) -> np.ndarray | None:
    """Per-user ``ref − other`` (each averaged over its runs), on the users both have; None when a
    run has no per-user file."""
    a, b = per_user_mean(ref_runs, key), per_user_mean(other_runs, key)
    if a is None or b is None:
        return None
    a, b = a.align(b, join="inner")
    return (a - b).to_numpy(float)


def user_effect(ref_runs: Sequence[str], other_runs: Sequence[str], key: str) -> dict[str, float]:
    """Effect size over users with its bootstrap CI and the Wilcoxon p-value (module docstring)."""
    d = user_differences(ref_runs, other_runs, key)
    if d is None or len(d) == 0:
        return {"delta": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n_users": 0, "p_users": np.nan}
    lo, hi = bootstrap_mean_ci(d)
    p = 1.0 if len(d) < 2 or np.allclose(d, 0.0) else float(stats.wilcoxon(d).pvalue)
    return {"delta": float(d.mean()), "ci_low": lo, "ci_high": hi, "n_users": len(d), "p_users": p}


def deterministic(values: pd.Series) -> bool:
    """True when a method's per-seed values do not depend on the seed (≥ 2 seeds, all equal)."""
    v = values.to_numpy(float)
    return len(v) >= 2 and bool(np.all(v == v[0]))


TIME_RATIO_TEST = ("paired t-test on log time ratios over interleaved benchmark repeats (scipy.stats.ttest_1samp); "
                   "effect: their geometric mean with a 95 % t confidence interval")


def paired_time_ratio(a: np.ndarray, b: np.ndarray, confidence: float = 0.95) -> dict[str, float]:
    """``a[r] / b[r]`` over benchmark repeats ``r`` (methods interleaved, so repeat r of each ran back to
    back: a pair that shares the machine's state). Times are skewed and a ratio is what a reader
    wants, so the test is on log ratios: ``ratio`` is their geometric mean, ``ratio_low``/``ratio_high``
    its two-sided t interval, ``p_ratio`` the two-sided p of "mean log ratio = 0", ``n_pairs`` the pairs
    used and ``n_dropped`` those left out because a time is not a positive finite number (no log ratio:
    counted, so a caller can say so rather than show fewer pairs as if they were all). Fewer than 2 pairs:
    no interval, p NaN. Identical ratios (no spread): the interval is that ratio and p is 0 (1 when the
    ratio is exactly 1)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape:
        raise ValueError(f"paired repeats differ in number: {a.shape} vs {b.shape}")
    ok = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
    logs = np.log(a[ok] / b[ok])
    n = len(logs)
    out = {"ratio": float(np.exp(logs.mean())) if n else np.nan, "ratio_min": float(np.exp(logs.min())) if n else np.nan,
           "ratio_max": float(np.exp(logs.max())) if n else np.nan, "ratio_low": np.nan, "ratio_high": np.nan,
           "p_ratio": np.nan, "n_pairs": n, "n_dropped": int(a.size - n)}
    if n < 2:
        return out
    if np.allclose(logs, logs[0]):
        out.update(ratio_low=out["ratio"], ratio_high=out["ratio"], p_ratio=1.0 if np.isclose(logs[0], 0.0) else 0.0)
        return out
    se = logs.std(ddof=1) / np.sqrt(n)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * se
    out.update(ratio_low=float(np.exp(logs.mean() - half)), ratio_high=float(np.exp(logs.mean() + half)),
               p_ratio=float(stats.ttest_1samp(logs, 0.0).pvalue))
    return out
