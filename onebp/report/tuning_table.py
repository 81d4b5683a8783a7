"""The tuning table: per dataset × method, the chosen settings and their validation value.

Reads ``<root>/<dataset>/<method>/best.json`` and ``trials.csv`` (written by ``onebp tune
summarize``). One row per tuned method: trials run (and how many diverged), the chosen trial and its
settings, its validation value next to trial 0's (the method's own defaults) and the selected epoch,
so a reader sees at once how much tuning changed each method.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from onebp.errors import UserError
from onebp.report.tables import Table


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _epoch_cell(r: dict) -> str:
    """The chosen trial's selected epoch, flagged when it was the trial's last evaluation at the cap."""
    from onebp.report.epoch_cap import at_last_evaluation

    e, budget = r.get("selected_epoch"), r.get("budget") or {}
    if e is None:
        return ""
    cap, every = budget.get("max_epochs"), budget.get("eval_every")
    if cap and every and e > 0 and at_last_evaluation(float(e), float(cap), int(every)):
        return f"{e} (cap: still rising)"
    return str(e)


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
        cells.append({
            "dataset": r["dataset"],
            "method": r["method"],
            "trials (failed)": f"{r['n_trials']} ({r['n_failed']})",
            "chosen": "defaults" if r["trial"] == 0 else f"trial {r['trial']}",
            "settings": ", ".join(f"{k}={_fmt(v)}" for k, v in r["params"].items()),
            f"valid {metric}": f"{r['valid_value']:.4f}",
            f"defaults' valid {metric}": f"{r['default_value']:.4f}",
            "selected epoch": _epoch_cell(r),
        })
        numbers.append({"dataset": r["dataset"], "method": r["method"], "trial": r["trial"],
                        "n_trials": r["n_trials"], "n_failed": r["n_failed"], "select_metric": metric,
                        "valid_value": r["valid_value"], "default_value": r["default_value"],
                        "selected_epoch": r.get("selected_epoch"),
                        **{f"param:{k}": v for k, v in r["params"].items()}})
    budget = records[0].get("budget") or {}
    caption = ("Tuning: the same budget for every method "
               + (f"({budget.get('n_trials')} trials, ≤ {budget.get('max_epochs')} epochs, validation every "
                  f"{budget.get('eval_every')} epochs, patience {budget.get('patience_epochs')} epochs, "
                  f"{budget.get('sampler')} sampler, seed {budget.get('seed')}); " if budget else "; ")
               + "trial 0 is the method's own defaults; chosen on the validation part, the test part "
                 "was never evaluated by any trial. Ties go to the lower trial. \"cap: still rising\": the chosen "
                 "trial's best validation value came at its last evaluation, so a longer budget could have "
                 "raised it.")
    return Table(pd.DataFrame(cells), pd.DataFrame(numbers), caption)
