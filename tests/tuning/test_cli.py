"""`onebp tune plan`: the trials printed, the defaults first."""

from __future__ import annotations

import json

from onebp.cli import main


def test_tune_plan_prints_the_trials_with_the_defaults_first(capsys):
    assert main(["tune", "plan", "--method", "twobp", "--dataset", "ml-100k", "--n-trials", "3"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["trial"] for x in lines] == [0, 1, 2]
    assert {k: lines[0][k] for k in ("lr", "l2", "temperature")} == {"lr": 5e-4, "l2": 1e-5, "temperature": 1.0}
    assert main(["tune", "plan", "--method", "mostpop", "--dataset", "ml-100k"]) == 2
    assert "declares no search space" in capsys.readouterr().err
