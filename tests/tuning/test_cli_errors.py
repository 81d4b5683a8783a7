"""`onebp tune summarize` and `--params-file` (which reads tuning's best.json) refuse bad input in one
stderr line naming the flag or file, exit 2, and write nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from onebp.cli import main
from onebp.errors import UserError
from onebp.training.commands import read_params_file

BINARY = b"\xff\xfe\x00\x81 not text"


def make_trial(root: Path, name: str, value: float, method: str = "onebp") -> Path:
    """A finished tuning trial's run directory, as `onebp train --set tuning_trial=true` leaves it."""
    d = root / "trials" / name
    d.mkdir(parents=True)
    cfg = {"method": method, "dataset": "tiny", "select_metric": "ndcg@20", "tuning_trial": True,
           "lr": 0.01, "params": {"beta": 0.5}}
    (d / "config.json").write_text(json.dumps(cfg))
    (d / "metrics.json").write_text(json.dumps({"status": "ok", "valid": {"ndcg@20": value}}))
    return d


def summarize(trials: list[Path], out: Path, *extra: str, method: str = "onebp", keys: str = "lr") -> int:
    return main(["tune", "summarize", "--method", method, "--dataset", "tiny", "--keys", keys,
                 "--out-dir", str(out), *extra, *map(str, trials)])


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("method", ["twobp", "ONEBP", " ", "onebp,"])
def test_a_method_other_than_the_trials_is_refused(tmp_path, capsys, method):
    trials = [make_trial(tmp_path, "trial00", 0.1), make_trial(tmp_path, "trial01", 0.2)]
    assert summarize(trials, tmp_path / "out", method=method) == 2
    err = one_error_line(capsys)
    assert "--method" in err and repr(method) in err and "'onebp'" in err
    assert not (tmp_path / "out").exists()


def test_the_trials_own_method_is_accepted(tmp_path, capsys):
    trials = [make_trial(tmp_path, "trial00", 0.1, method="twobp")]
    assert summarize(trials, tmp_path / "out", method="twobp") == 0
    assert json.loads((tmp_path / "out" / "best.json").read_text())["method"] == "twobp"


@pytest.mark.parametrize("budget", ["[1, 2]", "3", '"qmc"', "null"])
def test_a_budget_that_is_not_a_json_object_is_refused(tmp_path, capsys, budget):
    trials = [make_trial(tmp_path, "trial00", 0.1)]
    assert summarize(trials, tmp_path / "out", "--budget", budget) == 2
    assert "--budget" in one_error_line(capsys)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("keys", [",", "", " , "])
def test_keys_naming_no_setting_are_refused(tmp_path, capsys, keys):
    trials = [make_trial(tmp_path, "trial00", 0.1)]
    assert summarize(trials, tmp_path / "out", keys=keys) == 2
    assert "--keys" in one_error_line(capsys)
    assert not (tmp_path / "out").exists()  # no best.json with empty params


@pytest.mark.parametrize("name", ["metrics.json", "config.json"])
def test_a_trial_file_that_is_not_utf8_is_refused_naming_it(tmp_path, capsys, name):
    trials = [make_trial(tmp_path, "trial00", 0.1), make_trial(tmp_path, "trial01", 0.2)]
    (trials[1] / name).write_bytes(BINARY)
    assert summarize(trials, tmp_path / "out") == 2
    assert str(trials[1] / name) in one_error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_a_params_file_that_is_not_utf8_is_refused_naming_it(tmp_path):
    path = tmp_path / "best.json"
    path.write_bytes(BINARY)
    with pytest.raises(UserError, match="--params-file") as info:
        read_params_file(path)
    assert str(path) in str(info.value) and len(str(info.value).splitlines()) == 1
