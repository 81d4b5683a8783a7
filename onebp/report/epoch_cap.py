"""Runs the epoch cap bound: a longer budget could have changed what they reached.

The rule (``CAP_RULE``, printed under the report's cap table): a run is **cap-bound** when early
stopping did not end it and

(a) its selected (best validation) epoch lies in the last 20 % of its epoch cap
    (``selected > 0.8 · cap``), or
(b) its validation curve still rises over the last 20 % of the cap by more than its own evaluation
    noise: a least-squares line through the evaluations in that window (``epoch > 0.8 · cap``; at
    least 4 of them, else (b) is not applied), ``gain = slope × 0.2 · cap`` (the rise the line makes
    across the window), ``noise`` = the residual standard deviation of that fit (n − 2 degrees of
    freedom); cap-bound when ``gain > noise``.

Why both: (a) alone misses a run whose best value came a little before the window while the curve
kept climbing (a noisy plateau at the top still rising), and the old test — "best value at the very
last evaluation" — counted 0/5 OneBP runs capped in the 200-epoch ML-100K study although their median
selected epoch was 181 of 200. (b) alone misses a run that peaked inside the window and then dipped.
On a curve that is flat with independent noise, (b) fires by chance: the gain's standard error is
noise·sqrt(12/n) for n evenly spaced evaluations, so about 20 % of flat runs with 8 evaluations in the
window pass, 4 % with 40 (simulated in tests/report/test_cap_rule.py); a claim is called budget-bound
only when most of its seeds are, which keeps that chance small (``onebp.report.claims``).

Where it cannot be decided it says so — **unknown**, never silently "not bound":

- a run without a validation part (protocol paper: its selected epoch is its last by construction);
- a run with no validation values on disk — ``curve.csv`` absent (the shipped references keep only
  config/env/metrics.json), header-only, or its validation column all empty — whose selected epoch
  does not settle (a);
- a run without a selected epoch, for which (b) is not applied (fewer than 4 evaluations in the
  window) or does not fire: (a) cannot be ruled out;
- a run whose epoch cap is not known (no ``epochs`` in ``config.json`` and no ``epochs_run``);
- a run whose early stopping is not recorded, when (a) or (b) would make it cap-bound (had early
  stopping ended it, it is free; a run (a) and (b) leave free is free either way).

A run with a selected epoch and fewer than 4 evaluations in the window is judged on (a) alone, as
the rule says: free unless its selected epoch is in the window. A run that trains no epochs (EASE,
most-popular) is never cap-bound.

The per-run columns (``epochs_cap``, ``cap_bound`` 1/0/NaN, ``cap_gain``, ``cap_noise``) are added to
``results.csv`` by ``onebp report collect`` (split ``train``); for an older table without them,
``cap_frame`` computes them from the run directories it can reach.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from onebp.report.layout import MAIN, setting_tag
from onebp.report.tables import Table

WINDOW = 0.2  # the last fraction of the cap the rule looks at
MIN_EVALS = 4  # fewest evaluations in the window for the trend test (b)
CAP_COLUMNS = ("epochs_cap", "cap_bound", "cap_gain", "cap_noise")
CAP_RULE = (
    "Cap rule: a run is **cap-bound** when early stopping did not end it and (a) its selected epoch "
    f"lies in the last {WINDOW:.0%} of its epoch cap (selected > {1 - WINDOW:.1f} × cap), or (b) its "
    f"validation curve still rises over that last {WINDOW:.0%} by more than its own evaluation noise: "
    f"least-squares line through the evaluations in the window (at least {MIN_EVALS}), gain = slope × "
    f"{WINDOW} × cap, noise = the fit's residual standard deviation; cap-bound when gain > noise. "
    "**unknown** when the evidence is missing: no validation values on disk and (a) does not hold; no "
    "selected epoch and (b) does not hold; no epoch cap; or no early-stopping record while (a) or (b) holds."
)


@dataclass(frozen=True)
class CapCheck:
    """One run under ``CAP_RULE``. ``bound`` None: unknown (``why`` says why)."""

    cap: float
    bound: bool | None
    why: str
    gain: float = math.nan
    noise: float = math.nan
    n_window: int = 0


def window_trend(epochs: np.ndarray, values: np.ndarray, cap: float) -> tuple[float, float, int]:
    """(gain, noise, n) of the evaluations in the last ``WINDOW`` of ``cap``; NaNs when fewer than
    ``MIN_EVALS``. gain = least-squares slope × window length; noise = residual std (ddof 2)."""
    e, v = np.asarray(epochs, float), np.asarray(values, float)
    keep = (e > (1 - WINDOW) * cap) & (e <= cap) & np.isfinite(v)
    e, v = e[keep], v[keep]
    n = len(e)
    if n < MIN_EVALS or np.ptp(e) == 0:
        return math.nan, math.nan, n
    slope, icept = np.polyfit(e, v, 1)
    resid = v - (slope * e + icept)
    noise = float(np.sqrt(np.sum(resid ** 2) / (n - 2)))
    return float(slope * WINDOW * cap), noise, n


def cap_check(selected_epoch: float, cap: float, stopped_early: bool | None,
              curve: pd.DataFrame | None, has_valid: bool = True) -> CapCheck:
    """``CAP_RULE`` for one run. ``selected_epoch`` and ``cap``: NaN when not known; ``stopped_early``:
    None when not recorded; ``curve``: columns ``epoch`` and ``value`` (the validation metric the run
    selects on), None when not on disk."""
    cap = float(cap)
    if np.isfinite(cap) and cap <= 0:
        return CapCheck(cap, False, "trains no epochs")
    if stopped_early:
        return CapCheck(cap, False, "stopped early")
    if not np.isfinite(cap):
        # Not "trains no epochs": a table that lost its epochs_run row says nothing about the training.
        return CapCheck(math.nan, None, "epoch cap unknown (no epochs in config.json, no epochs_run)")
    if not has_valid:
        return CapCheck(cap, None, "no validation part (selected epoch = last by construction)")
    chk = _rule(selected_epoch, cap, curve)
    if stopped_early is None and chk.bound is not False:
        # Early stopping would make it free; only a run (a) and (b) leave free is free either way.
        return CapCheck(cap, None, f"early stopping not recorded; {chk.why}", chk.gain, chk.noise, chk.n_window)
    return chk


def _rule(selected_epoch: float, cap: float, curve: pd.DataFrame | None) -> CapCheck:
    """(a) or (b) of ``CAP_RULE`` for a run early stopping did not end, with a known positive cap."""
    if curve is not None and not (np.isfinite(curve["epoch"].to_numpy(float))
                                  & np.isfinite(curve["value"].to_numpy(float))).any():
        curve = None  # a header-only curve.csv or an all-empty validation column is no curve at all
        missing = "no validation values in curve.csv"
    else:
        missing = "no curve.csv"
    gain, noise, n = (math.nan, math.nan, 0) if curve is None else window_trend(
        curve["epoch"].to_numpy(), curve["value"].to_numpy(), cap)
    known = bool(np.isfinite(selected_epoch))
    if known and selected_epoch > (1 - WINDOW) * cap:
        return CapCheck(cap, True, "selected epoch in the last 20 %", gain, noise, n)
    if curve is None:
        return CapCheck(cap, None, missing, gain, noise, n)
    # A rise below 1e-9 is no rise (float residue of a flat curve, where gain and noise are both ~0).
    if np.isfinite(gain) and gain > noise and gain > 1e-9:
        return CapCheck(cap, True, "still rising in the last 20 %", gain, noise, n)
    trend = ("not rising beyond its noise" if np.isfinite(gain)
             else f"{n} evaluations in the window (< {MIN_EVALS}): trend not tested")
    if not known:
        # (a) is half the rule: without the selected epoch a peak inside the window cannot be ruled out.
        return CapCheck(cap, None, f"no selected epoch; {trend}", gain, noise, n)
    return CapCheck(cap, False, trend, gain, noise, n)


def _json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _known(value: object) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def run_cap(run_dir: str | Path, metrics: dict | None = None) -> CapCheck:
    """``CAP_RULE`` for a run directory: the cap and metric from ``config.json`` (the cap falls back to
    ``epochs_run`` — equal to the cap for a run early stopping did not end), the curve from
    ``curve.csv`` when present. ``metrics``: the run's bookkeeping as a results table has it; a value
    it lacks (missing, None or NaN) is read from the directory's ``metrics.json``, else not known."""
    run_dir = Path(run_dir)
    m = _json(run_dir / "metrics.json") or {}
    if metrics is not None:
        m = {**m, **{k: v for k, v in metrics.items() if _known(v)}}
    cfg = _json(run_dir / "config.json") or {}
    stopped = bool(m["stopped_early"]) if _known(m.get("stopped_early")) else None
    epochs_run = float(m["epochs_run"]) if _known(m.get("epochs_run")) else math.nan
    cap = float(cfg.get("epochs", epochs_run))
    if epochs_run == 0:
        cap = 0.0  # EASE / most-popular: the config's epochs are not used
    has_valid = m.get("protocol", cfg.get("protocol")) != "paper"
    metric = cfg.get("select_metric", "ndcg@20")
    curve = None
    path = run_dir / "curve.csv"
    if path.exists():
        try:
            c = pd.read_csv(path)
        except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError):
            c = None
        col = f"valid/{metric}"
        if c is not None and col in c and "epoch" in c:
            curve = c[["epoch", col]].rename(columns={col: "value"}).dropna()
    selected = m.get("selected_epoch")
    return cap_check(float(selected) if _known(selected) else math.nan, cap, stopped, curve, has_valid)


def cap_values(check: CapCheck) -> dict[str, float]:
    """The per-run columns ``collect`` writes (``cap_bound``: 1, 0, or NaN for unknown)."""
    return {"epochs_cap": check.cap,
            "cap_bound": math.nan if check.bound is None else float(check.bound),
            "cap_gain": check.gain, "cap_noise": check.noise}


def resolve_run_dir(run_dir: str, base: str | Path | None) -> str:
    """``run_dir`` as written in a results table, found on disk: as is, or — for a frozen reference,
    whose table names ``results/runs/...`` and which keeps them as ``<base>/runs/...`` — under
    ``base``. Unchanged when neither exists."""
    if base is None or Path(run_dir).exists():
        return run_dir
    parts = Path(run_dir).parts
    for i in range(len(parts)):
        cand = Path(base, *parts[i:])
        if parts[i] == "runs" and cand.exists():
            return os.path.normpath(cand)
    return run_dir


def cap_frame(df: pd.DataFrame) -> pd.DataFrame:
    """One row per run of the table (with training bookkeeping): dataset, method, setting, protocol,
    seed, run_dir, selected_epoch, epochs_cap, cap_bound (True/False/None), cap_gain, cap_noise, why.
    Taken from the table's cap rows when it has them (``collect`` wrote them), else computed from
    the run directory (``run_cap``); a run whose directory is gone is judged on (a) alone, with the
    cap taken from ``epochs_run``. A bookkeeping row the table lacks is taken from the run's
    ``metrics.json`` when it is on disk, else not known (``CAP_RULE``'s unknown cases)."""
    train = df[df["split"] == "train"]
    cols = ["dataset", "method", "setting", "protocol", "seed", "run_dir", "selected_epoch", "epochs_cap",
            "cap_bound", "cap_gain", "cap_noise", "why"]
    if train.empty:
        return pd.DataFrame(columns=cols)
    wide = train.pivot_table(index=["dataset", "method", "setting", "protocol", "seed", "run_dir"],
                             columns="metric", values="value", aggfunc="first").reset_index()
    rows = []
    for r in wide.to_dict("records"):
        base = {k: r[k] for k in cols[:6]}
        sel = float(r.get("selected_epoch", math.nan))
        if "cap_bound" in r and np.isfinite(r.get("epochs_cap", math.nan)):
            b = r["cap_bound"]
            bound = None if not np.isfinite(b) else bool(b)
            why = "from results.csv" if bound is not None else "unknown (from results.csv)"
            rows.append({**base, "selected_epoch": sel, "epochs_cap": r["epochs_cap"], "cap_bound": bound,
                         "cap_gain": r.get("cap_gain", math.nan), "cap_noise": r.get("cap_noise", math.nan),
                         "why": why})
            continue
        # A missing row pivots to NaN, and bool(NaN) is True: pass it on as not known, not as "stopped".
        metrics = {"selected_epoch": sel, "epochs_run": r.get("epochs_run", math.nan),
                   "stopped_early": r.get("stopped_early", math.nan), "protocol": r["protocol"]}
        chk = run_cap(str(r["run_dir"]), metrics)
        rows.append({**base, "selected_epoch": sel, "epochs_cap": chk.cap, "cap_bound": chk.bound,
                     "cap_gain": chk.gain, "cap_noise": chk.noise, "why": chk.why})
    return pd.DataFrame(rows, columns=cols)


def side_status(caps: pd.DataFrame, dataset: str, method: str, tag: str, protocol: str = "clean") -> dict:
    """How many of one side's runs (dataset, method, setting tag, protocol) are cap-bound:
    {"n", "bound", "unknown", "state"}; state "bound" when more than half are, "unknown" when the
    unknown ones could make it so, "free" otherwise, "" when there are no runs."""
    if caps.empty:
        return {"n": 0, "bound": 0, "unknown": 0, "state": ""}
    tags = caps["setting"].astype(str).map(setting_tag)
    g = caps[(caps["dataset"] == dataset) & (caps["method"] == method) & (tags == tag)
             & (caps["protocol"] == protocol)]
    n = len(g)
    bound = int(sum(b is True for b in g["cap_bound"]))
    unknown = int(sum(b is None or (isinstance(b, float) and math.isnan(b)) for b in g["cap_bound"]))
    state = "" if n == 0 else ("bound" if bound > n / 2 else "unknown" if bound + unknown > n / 2 else "free")
    return {"n": n, "bound": bound, "unknown": unknown, "state": state}


def epoch_cap_table(df: pd.DataFrame, protocol: str = "clean") -> Table:
    """Per dataset × method (main setting): runs, how many early stopping ended, how many are
    cap-bound (``CAP_RULE``) and how many could not be judged, median selected epoch, the cap."""
    caps = cap_frame(df)
    tags = caps["setting"].astype(str).map(setting_tag)
    sel = caps[(tags == MAIN) & (caps["protocol"] == protocol)]
    if sel.empty:
        raise ValueError(f"no runs under protocol {protocol!r} with training bookkeeping")
    train = df[(df["split"] == "train") & (df["metric"] == "stopped_early")].set_index("run_dir")["value"]
    listed = df[df["split"] == "train"]
    order = list(dict.fromkeys(zip(listed["dataset"], listed["method"], strict=True)))  # as the study lists them
    rows = []
    for (ds, m), g in sorted(sel.groupby(["dataset", "method"]), key=lambda kv: order.index(kv[0])):
        st = side_status(caps, ds, m, MAIN, protocol)
        stopped = int((train.reindex(g["run_dir"]).fillna(0).astype(float) > 0).sum())
        rows.append({"dataset": ds, "method": m, "runs": len(g), "stopped_early": stopped,
                     "cap_bound": st["bound"], "cap_unknown": st["unknown"], "state": st["state"],
                     "selected_epoch_median": float(g["selected_epoch"].median()),
                     "epochs_cap": float(g["epochs_cap"].max()),
                     "gain_median": float(g["cap_gain"].median()), "noise_median": float(g["cap_noise"].median())})
    num = pd.DataFrame(rows)

    def bound_cell(r: dict) -> str:
        cell = f"{r['cap_bound']}/{r['runs']}"
        return cell + (f" ({r['cap_unknown']} cap: unknown)" if r["cap_unknown"] else "")

    cells = pd.DataFrame({
        "dataset": num["dataset"], "method": num["method"], "runs": num["runs"].astype(str),
        "stopped early": num["stopped_early"].astype(str),
        "cap-bound": [bound_cell(r) for r in num.to_dict("records")],
        "selected epoch (median)": num["selected_epoch_median"].map(lambda v: f"{v:.0f}"),
        "epoch cap": num["epochs_cap"].map(lambda v: f"{v:.0f}"),
        "last-20 % gain vs noise (median)": [
            "" if not np.isfinite(a) else f"{a:+.4f} vs {b:.4f}"
            for a, b in zip(num["gain_median"], num["noise_median"], strict=True)],
    })
    caption = (f"Main runs, protocol {protocol!r}: how many ended by early stopping, and how many the epoch "
               f"cap bound. {CAP_RULE} A comparison where one side is cap-bound in most seeds measures "
               "speed of convergence as much as quality: its claim gets the verdict budget-bound. EASE and "
               "most-popular train no epochs.")
    return Table(cells, num, caption)
