"""The report's epoch-cap check: which runs the cap ended while their validation value still rose."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from onebp.errors import UserError
from onebp.report.epoch_cap import at_last_evaluation, epoch_cap_table


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


def test_at_last_evaluation() -> None:
    assert at_last_evaluation(200, 200, 5)
    assert at_last_evaluation(196, 200, 5)  # eval_every 5 and a cap not on the grid: still the last
    assert not at_last_evaluation(195, 200, 5)
    assert not at_last_evaluation(199, 200, 1)


def test_epoch_cap_table_counts_capped_runs(tmp_path: Path) -> None:
    rows = (_rows(tmp_path, "slow", 0, 200, 200, False) + _rows(tmp_path, "slow", 1, 195, 200, False)
            + _rows(tmp_path, "fast", 0, 60, 360, True) + _rows(tmp_path, "fast", 1, 200, 200, False)
            + _rows(tmp_path, "ease", 0, 0, 0, False))
    t = epoch_cap_table(pd.DataFrame(rows))
    n = t.numbers.set_index("method")
    assert n.loc["slow", "still_rising_at_cap"] == 1 and n.loc["slow", "stopped_early"] == 0
    assert n.loc["fast", "still_rising_at_cap"] == 1 and n.loc["fast", "stopped_early"] == 1
    assert n.loc["ease", "still_rising_at_cap"] == 0  # trains no epochs
    assert list(t.cells["best at the last evaluation (cap)"]) == ["1/2", "1/2", "0/1"]


def test_epoch_cap_table_names_a_missing_config(tmp_path: Path) -> None:
    rows = _rows(tmp_path, "slow", 0, 200, 200, False)
    (Path(rows[0]["run_dir"]) / "config.json").unlink()
    with pytest.raises(UserError, match="config.json"):
        epoch_cap_table(pd.DataFrame(rows))


def test_tuning_table_flags_a_chosen_trial_at_the_cap() -> None:
    from onebp.report.tuning_table import tuning_table

    budget = {"n_trials": 4, "max_epochs": 200, "eval_every": 5, "patience_epochs": 200, "sampler": "qmc",
              "seed": 0}
    common = {"dataset": "toy", "n_trials": 4, "n_failed": 0, "select_metric": "ndcg@20", "default_value": 0.2,
              "budget": budget}
    records = [{**common, "method": "slow", "trial": 2, "params": {"lr": 1e-3}, "valid_value": 0.25,
                "selected_epoch": 200},
               {**common, "method": "fast", "trial": 0, "params": {"lr": 1e-2}, "valid_value": 0.2,
                "selected_epoch": 195}]
    t = tuning_table(records, methods=["slow", "fast"])
    assert list(t.cells["selected epoch"]) == ["200 (cap: still rising)", "195"]
    assert list(t.cells["chosen"]) == ["trial 2", "defaults"]
    assert "200 epochs" in t.caption and "qmc" in t.caption
