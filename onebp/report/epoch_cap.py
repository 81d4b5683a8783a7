"""Runs the epoch cap ended while they were still improving.

A run that early stopping did not end ran until its ``epochs`` cap; if its selected (best validation)
epoch is also its last evaluation, its validation metric was still rising, and a longer budget could
have raised it. A comparison in which one side is capped this way and the other is not can flatter
the uncapped side, so the report lists, per dataset × method (main setting, protocol clean), how many
runs ended that way.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from onebp.report.layout import MAIN, run_eval_every, setting_tag
from onebp.report.tables import Table


def at_last_evaluation(selected_epoch: float, epochs_run: float, eval_every: int) -> bool:
    """True when no evaluation came after the selected one (the selected epoch is within the last
    ``eval_every`` epochs of the run)."""
    return selected_epoch > epochs_run - eval_every


def epoch_cap_table(df: pd.DataFrame, protocol: str = "clean") -> Table:
    """Per dataset × method (main setting): runs, how many early stopping ended, how many the cap
    ended with their best validation value at the last evaluation, median selected epoch, the cap."""
    tags = df["setting"].astype(str).map(setting_tag)
    sel = df[(tags == MAIN) & (df["protocol"] == protocol) & (df["split"] == "train")]
    if sel.empty:
        raise ValueError(f"no runs under protocol {protocol!r} with training bookkeeping")
    wide = sel.pivot_table(index=["dataset", "method", "run_dir"], columns="metric", values="value",
                           aggfunc="first").reset_index()
    for col in ("selected_epoch", "epochs_run", "stopped_early"):
        if col not in wide:
            raise ValueError(f"results table has no {col!r} rows (split 'train')")
    order = list(dict.fromkeys(zip(sel["dataset"], sel["method"], strict=True)))  # as the study lists them
    rows = []
    for (ds, m), g in sorted(wide.groupby(["dataset", "method"]), key=lambda kv: order.index(kv[0])):
        stopped = g["stopped_early"].fillna(0).astype(float) > 0
        last = [float(e) > 0 and not st and at_last_evaluation(float(s), float(e), run_eval_every(d))
                for s, e, d, st in zip(g["selected_epoch"], g["epochs_run"], g["run_dir"], stopped, strict=True)]
        rows.append({"dataset": ds, "method": m, "runs": len(g), "stopped_early": int(stopped.sum()),
                     "still_rising_at_cap": int(np.sum(last)),
                     "selected_epoch_median": float(g["selected_epoch"].median()),
                     "epochs_cap": float(g["epochs_run"].max())})
    num = pd.DataFrame(rows)
    cells = pd.DataFrame({
        "dataset": num["dataset"], "method": num["method"], "runs": num["runs"].astype(str),
        "stopped early": num["stopped_early"].astype(str),
        "best at the last evaluation (cap)": [f"{n}/{r}" for n, r in zip(num["still_rising_at_cap"], num["runs"],
                                                                            strict=True)],
        "selected epoch (median)": num["selected_epoch_median"].map(lambda v: f"{v:.0f}"),
        "epochs run (max)": num["epochs_cap"].map(lambda v: f"{v:.0f}"),
    })
    caption = (f"Main runs, protocol {protocol!r}: how many ended by early stopping, and how many ran to "
               "their epoch cap with their best validation value at the last evaluation — still rising, "
               "so a longer budget could have raised them (EASE and most-popular train no epochs). A "
               "comparison where only one side is capped this way can flatter the other side.")
    return Table(cells, num, caption)
