"""`onebp tune summarize` refuses what it cannot rank: trials of different methods, datasets or
select_metrics, and a --keys name the trials do not have; exit 2, one line, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from onebp.cli import main


def make_trial(root: Path, name: str, value: float, **config: object) -> Path:
    """A finished tuning trial's run directory, as `onebp train --set tuning_trial=true` leaves it."""
    d = root / "trials" / name
    d.mkdir(parents=True)
    cfg = {"method": "onebp", "dataset": "tiny", "select_metric": "ndcg@20", "tuning_trial": True,
           "lr": 0.01, "l2": 0.0, "params": {"beta": 0.5}, **config}
    (d / "config.json").write_text(json.dumps(cfg))
    (d / "metrics.json").write_text(json.dumps({"status": "ok", "valid": {cfg["select_metric"]: value,
                                                                            "recall@20": value},
                                                "selected_epoch": 2, "epochs_run": 4}))
    return d


def summarize(trials: list[Path], out: Path, keys: str = "lr,beta") -> int:
    return main(["tune", "summarize", "--method", "onebp", "--dataset", "tiny", "--keys", keys,
                 "--out-dir", str(out), *map(str, trials)])


def test_trials_of_one_method_dataset_and_metric_are_summarized(tmp_path, capsys):
    trials = [make_trial(tmp_path, "trial00", 0.1), make_trial(tmp_path, "trial01", 0.2, lr=0.001)]
    # the workflow passes the declared metrics.json files; a directory works too
    assert summarize([trials[0] / "metrics.json", trials[1]], tmp_path / "out") == 0
    best = json.loads((tmp_path / "out" / "best.json").read_text())
    assert best["trial"] == 1 and best["params"] == {"lr": 0.001, "beta": 0.5}
    assert best["run_dir"] == str(trials[1])


@pytest.mark.parametrize(("field", "other"), [("method", "twobp"), ("dataset", "ml-100k"),
                                              ("select_metric", "recall@20")])
def test_mixed_trials_are_refused_naming_both_and_the_field(tmp_path, capsys, field, other):
    first = make_trial(tmp_path, "trial00", 0.1)
    mixed = make_trial(tmp_path, "trial01", 0.9, **{field: other})
    assert summarize([first, mixed], tmp_path / "out") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert field in err and str(first) in err and str(mixed) in err and other in err
    assert not (tmp_path / "out").exists()


def test_an_unknown_key_is_refused_naming_it_and_the_known_ones(tmp_path, capsys):
    trials = [make_trial(tmp_path, "trial00", 0.1), make_trial(tmp_path, "trial01", 0.2)]
    assert summarize(trials, tmp_path / "out", keys="lr,betta") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "'betta'" in err and "known:" in err and "beta" in err and "lr" in err
    assert not (tmp_path / "out").exists()  # no best.json with "betta": null


def test_the_tuning_table_reads_the_best_json_files_it_is_given(tmp_path, capsys):
    """The workflow passes `onebp report tuning` its declared best.json files (trials.csv next to each),
    not a directory to search: under a storage plugin only those files are there."""
    trials = [make_trial(tmp_path, "trial00", 0.1), make_trial(tmp_path, "trial01", 0.2, lr=0.001)]
    assert summarize(trials, tmp_path / "copy" / "tiny" / "onebp") == 0
    out = tmp_path / "tables" / "tuning"
    assert main(["report", "tuning", str(tmp_path / "copy" / "tiny" / "onebp" / "best.json"), "--out", str(out)]) == 0
    assert "onebp" in out.with_suffix(".md").read_text()
    assert main(["report", "tuning", "--out", str(out)]) == 2  # neither files nor --root
    assert "best.json" in capsys.readouterr().err
