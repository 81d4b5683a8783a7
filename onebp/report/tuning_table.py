"""The tuning table: per dataset × method, the chosen settings and their validation value.

Reads ``<root>/<dataset>/<method>/best.json`` and ``trials.csv`` (written by ``onebp tune
summarize``). One row per tuned method: trials run (and how many diverged), the chosen trial and its
settings, its validation value next to trial 0's (the method's own defaults) and the selected epoch,
so a reader sees at once how much tuning changed each method.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from onebp.errors import UserError
from onebp.report.epoch_cap import CAP_RULE, CapCheck, cap_check, run_cap
from onebp.report.tables import Table


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def trial_cap(r: dict) -> CapCheck | None:
    """``CAP_RULE`` for the chosen trial: cap and evaluation grid from the budget, early stopping
    from ``trials.csv``, the curve from the trial's directory when it is on disk (``trial_dir``,
    found by ``load_best``); None when the record has no selected epoch."""
    e, budget = r.get("selected_epoch"), r.get("budget") or {}
    if e is None:
        return None
    cap = float(budget.get("max_epochs") or r.get("epochs_run") or math.nan)
    if r.get("epochs_run") == 0:
        cap = 0.0  # trains no epochs (EASE, most-popular): never cap-bound
    # None: trials.csv does not say whether early stopping ended it (never read as "did not") — unless
    # the budget's patience could not run out before the cap after the selected epoch
    stopped, patience = r.get("stopped_early"), budget.get("patience_epochs")
    if stopped is None and patience is not None and math.isfinite(cap) and float(e) + float(patience) > cap:
        stopped = False
    if r.get("trial_dir"):
        return run_cap(r["trial_dir"], {"selected_epoch": e, "epochs_run": r.get("epochs_run", cap),
                                        "stopped_early": stopped})
    return cap_check(float(e), cap, stopped, None)


def _epoch_cell(r: dict) -> str:
    """The chosen trial's selected epoch, marked "(cap-bound)" when ``CAP_RULE`` says so and
    "(cap: unknown)" when it cannot tell."""
    chk = trial_cap(r)
    if chk is None:
        return ""
    e = r["selected_epoch"]
    if chk.bound is None:
        return f"{e} (cap: unknown)"
    return f"{e} (cap-bound)" if chk.bound else str(e)


def load_best(path: str | Path) -> dict:
    """One ``best.json`` with the number of finished trials from the ``trials.csv`` next to it."""
    path = Path(path)
    try:
        best = json.loads(path.read_text())
        trials = pd.read_csv(path.parent / "trials.csv")
    except (OSError, ValueError) as exc:  # ValueError: JSON and CSV parse errors
        raise UserError(f"{path}: {exc}") from None
    if not isinstance(best, dict) or "status" not in trials:
        raise UserError(f"{path}: not a best.json/trials.csv pair written by `onebp tune summarize`")
    best["n_finished"] = int((trials["status"] == "ok").sum())
    chosen = trials[trials["trial"] == best.get("trial")] if "trial" in trials else trials.iloc[0:0]
    for col in ("stopped_early", "epochs_run"):
        if not chosen.empty and col in chosen:
            v = chosen[col].iloc[0]
            if col == "epochs_run":
                best[col] = float(v)
            elif str(v).strip().lower() in ("true", "false"):  # an empty cell is not "did not stop early"
                best[col] = str(v).strip().lower() == "true"
    # The chosen trial's directory (for its curve): as written, or under this tuning folder's
    # trials/ (a frozen reference keeps neither; the cap rule then says "unknown" where it must).
    rd = str(best.get("run_dir") or "")
    for cand in (Path(rd), path.parent / "trials" / Path(rd).name):
        if rd and (cand / "curve.csv").exists():
            best["trial_dir"] = str(cand)
            break
    return best


def load_tuning(root: str | Path) -> list[dict]:
    """Every ``best.json`` under ``root`` (``<dataset>/<method>/best.json``), sorted."""
    return [load_best(path) for path in sorted(Path(root).glob("*/*/best.json"))]


def tuning_table(records: Sequence[dict], methods: Sequence[str] | None = None,
                 datasets: Sequence[str] | None = None) -> Table:
    if not records:
        raise UserError("no tuning results (best.json) found")
    order = {(d, m): (datasets.index(d) if datasets and d in datasets else 99,
                      methods.index(m) if methods and m in methods else 99, d, m)
             for d, m in ((r["dataset"], r["method"]) for r in records)}
    records = sorted(records, key=lambda r: order[(r["dataset"], r["method"])])
    cells, numbers = [], []
    for r in records:
        metric = r["select_metric"]
        chk = trial_cap(r)
        cells.append({
            "dataset": r["dataset"],
            "method": r["method"],
            "trials (failed)": f"{r['n_trials']} ({r['n_failed']})",
            "chosen": "defaults" if r["trial"] == 0 else f"trial {r['trial']}",
            "settings": ", ".join(f"{k}={_fmt(v)}" for k, v in r["params"].items()),
            f"valid {metric}": f"{r['valid_value']:.4f}",
            # null when the defaults' trial failed (diverged, or recorded no value): best.json is strict JSON
            f"defaults' valid {metric}": "—" if r["default_value"] is None else f"{r['default_value']:.4f}",
            "selected epoch": _epoch_cell(r),
        })
        numbers.append({"dataset": r["dataset"], "method": r["method"], "trial": r["trial"],
                        "n_trials": r["n_trials"], "n_failed": r["n_failed"], "select_metric": metric,
                        "valid_value": r["valid_value"],
                        "default_value": float("nan") if r["default_value"] is None else r["default_value"],
                        "selected_epoch": r.get("selected_epoch"),
                        "cap_bound": None if chk is None else chk.bound,
                        **{f"param:{k}": v for k, v in r["params"].items()}})
    budget = records[0].get("budget") or {}
    caption = ("Tuning: the same budget for every method "
               + (f"({budget.get('n_trials')} trials, ≤ {budget.get('max_epochs')} epochs, validation every "
                  f"{budget.get('eval_every')} epochs, patience {budget.get('patience_epochs')} epochs, "
                  f"{budget.get('sampler')} sampler, seed {budget.get('seed')}); " if budget else "; ")
               + "trial 0 is the method's own defaults; chosen on the validation part, the test part "
                 "was never evaluated by any trial. Ties go to the lower trial. Selected epoch \"(cap-bound)\": the "
                 "chosen trial is cap-bound, so the budget, not the method, may have decided the choice. "
               + CAP_RULE)
    return Table(pd.DataFrame(cells), pd.DataFrame(numbers), caption)
