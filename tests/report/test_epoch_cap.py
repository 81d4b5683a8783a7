"""The report's epoch-cap table and the tuning table under the cap rule (onebp.report.epoch_cap.CAP_RULE;
its synthetic-curve tests are in test_cap_rule.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from onebp.report.epoch_cap import epoch_cap_table


def _rows(tmp_path: Path, method: str, seed: int, selected: int, run: int, stopped: bool,
          eval_every: int = 5) -> list[dict]:
    d = tmp_path / method / f"seed{seed}"
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"eval_every": eval_every}))
    base = {"dataset": "toy", "method": method, "setting": "main-00000000", "seed": seed, "protocol": "clean",
            "split": "train", "k": None, "run_dir": str(d)}
    return [{**base, "metric": "selected_epoch", "value": selected},
            {**base, "metric": "epochs_run", "value": run},
            {**base, "metric": "stopped_early", "value": float(stopped)}]


def test_epoch_cap_table_counts_capped_runs(tmp_path: Path) -> None:
    rows = (_rows(tmp_path, "slow", 0, 200, 200, False) + _rows(tmp_path, "slow", 1, 195, 200, False)
            + _rows(tmp_path, "fast", 0, 60, 360, True) + _rows(tmp_path, "fast", 1, 200, 200, False)
            + _rows(tmp_path, "ease", 0, 0, 0, False))
    t = epoch_cap_table(pd.DataFrame(rows))
    n = t.numbers.set_index("method")
    # selected 200 and 195 of 200: both in the last 20 % of the cap (the old rule counted only 200)
    assert n.loc["slow", "cap_bound"] == 2 and n.loc["slow", "stopped_early"] == 0
    assert n.loc["fast", "cap_bound"] == 1 and n.loc["fast", "stopped_early"] == 1
    assert n.loc["ease", "cap_bound"] == 0  # trains no epochs
    assert list(t.cells["cap-bound"]) == ["2/2", "1/2", "0/1"]


def test_epoch_cap_table_without_config_takes_the_cap_from_epochs_run(tmp_path: Path) -> None:
    rows = _rows(tmp_path, "slow", 0, 190, 200, False) + _rows(tmp_path, "slow", 1, 100, 200, False)
    for r in rows[::3]:
        (Path(r["run_dir"]) / "config.json").unlink()
    n = epoch_cap_table(pd.DataFrame(rows)).numbers.set_index("method")
    # 190 > 0.8 × 200: bound; 100 with no curve on disk: unknown, never silently free
    assert n.loc["slow", "epochs_cap"] == 200 and n.loc["slow", "cap_bound"] == 1
    assert n.loc["slow", "cap_unknown"] == 1


def test_tuning_table_flags_a_cap_bound_chosen_trial() -> None:
    from onebp.report.tuning_table import tuning_table

    budget = {"n_trials": 4, "max_epochs": 200, "eval_every": 5, "patience_epochs": 200, "sampler": "qmc",
              "seed": 0}
    common = {"dataset": "toy", "n_trials": 4, "n_failed": 0, "select_metric": "ndcg@20", "default_value": 0.2,
              "budget": budget}
    records = [{**common, "method": "slow", "trial": 2, "params": {"lr": 1e-3}, "valid_value": 0.25,
                "selected_epoch": 200},
               {**common, "method": "fast", "trial": 0, "params": {"lr": 1e-2}, "valid_value": 0.2,
                "selected_epoch": 100}]
    t = tuning_table(records, methods=["slow", "fast"])
    # no curve on disk: (a) settles 200 of 200; 100 of 200 cannot be judged
    assert list(t.cells["selected epoch"]) == ["200 (cap-bound)", "100 (cap: unknown)"]
    assert list(t.cells["chosen"]) == ["trial 2", "defaults"]
    assert "200 epochs" in t.caption and "qmc" in t.caption
