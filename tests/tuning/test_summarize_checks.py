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


# -- one split, budget and seed; every trial once; failures counted ----------------------------------
#: what `onebp train` records of every trial of one budget (onebp.tuning.trials.trial_overrides)
RUN = {"split_fingerprint": "sha256:aaaa", "epochs": 1000, "eval_every": 5, "patience_epochs": 300,
       "min_epochs": 0, "seed": 0, "protocol": "clean"}


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(("field", "other"), [("split_fingerprint", "sha256:bbbb"), ("epochs", 10),
                                              ("eval_every", 1), ("patience_epochs", 50), ("min_epochs", 100),
                                              ("seed", 7)])
def test_trials_of_another_split_budget_or_seed_are_refused(tmp_path, capsys, field, other):
    first = make_trial(tmp_path, "trial00", 0.1, **RUN)
    mixed = make_trial(tmp_path, "trial01", 0.9, **{**RUN, field: other})  # the better value: it would win
    assert summarize([first, mixed], tmp_path / "out") == 2
    err = one_line(capsys)
    assert f"differ in {field}" in err and str(mixed) in err and repr(other) in err
    assert not (tmp_path / "out").exists()


def test_a_trial_of_protocol_paper_is_refused(tmp_path, capsys):
    trials = [make_trial(tmp_path, "trial00", 0.1, **{**RUN, "protocol": "paper"}),
              make_trial(tmp_path, "trial01", 0.2, **{**RUN, "protocol": "paper"})]
    assert summarize(trials, tmp_path / "out") == 2
    assert "protocol 'paper'" in one_line(capsys)
    assert not (tmp_path / "out").exists()


def test_trials_of_another_budget_than_recorded_are_refused(tmp_path, capsys):
    trials = [make_trial(tmp_path, "trial00", 0.1, **RUN), make_trial(tmp_path, "trial01", 0.2, **RUN)]
    budget = json.dumps({"n_trials": 2, "max_epochs": 2000, "eval_every": 5})
    assert summarize([*trials, "--budget", budget], tmp_path / "out") == 2
    err = one_line(capsys)
    assert "epochs=1000" in err and "max_epochs=2000" in err
    assert not (tmp_path / "out").exists()
    budget = json.dumps({"n_trials": 2, "max_epochs": 1000, "eval_every": 5, "patience_epochs": 300,
                         "min_epochs": 0, "run_seed": 0})
    assert summarize([*trials, "--budget", budget], tmp_path / "out") == 0


def test_a_tuned_key_may_differ_between_trials(tmp_path, capsys):
    # not a check that failed before: the shared fields must never refuse what a study tunes
    trials = [make_trial(tmp_path, "trial00", 0.1, **RUN),
              make_trial(tmp_path, "trial01", 0.2, **{**RUN, "min_epochs": 50})]
    assert summarize(trials, tmp_path / "out", keys="lr,min_epochs") == 0
    assert json.loads((tmp_path / "out" / "best.json").read_text())["params"]["min_epochs"] == 50


def test_a_trial_given_twice_is_refused(tmp_path, capsys):
    t0 = make_trial(tmp_path, "trial00", 0.1, **RUN)
    for given in ([t0, t0, t0], [t0, t0 / "metrics.json"]):
        assert summarize(given, tmp_path / "out") == 2
        assert f"{t0}: the same trial directory given twice" in one_line(capsys)
    assert not (tmp_path / "out").exists()


def test_fewer_trials_than_the_budget_are_refused(tmp_path, capsys):
    trials = [make_trial(tmp_path, "trial00", 0.1, **RUN), make_trial(tmp_path, "trial01", 0.2, **RUN)]
    assert summarize([*trials, "--budget", '{"n_trials": 3}'], tmp_path / "out") == 2
    assert "n_trials=3 but 2 trial directories" in one_line(capsys)
    assert not (tmp_path / "out").exists()


def set_valid(trial: Path, valid: dict) -> None:
    metrics = json.loads((trial / "metrics.json").read_text())
    (trial / "metrics.json").write_text(json.dumps({**metrics, "valid": valid}))  # NaN as Python writes it


def strict_json(path: Path) -> dict:
    def refuse(name: str) -> None:
        raise AssertionError(f"{path}: {name} is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_a_finished_trial_without_a_finite_value_counts_as_failed(tmp_path, capsys):
    trials = [make_trial(tmp_path, f"trial0{i}", 0.1 * i, **RUN) for i in range(4)]
    set_valid(trials[0], {"ndcg@20": float("nan"), "recall@20": 0.5})  # the defaults: NaN
    set_valid(trials[2], {"recall@20": 0.9})  # no select_metric at all
    assert summarize([*trials, "--budget", '{"n_trials": 4}'], tmp_path / "out") == 0
    best = strict_json(tmp_path / "out" / "best.json")
    assert best["trial"] == 3 and best["default_value"] is None
    assert best["n_failed"] == 2 and [f["trial"] for f in best["failed"]] == [0, 2]
    assert "ndcg@20 is nan" in best["failed"][0]["reason"] and "no ndcg@20" in best["failed"][1]["reason"]
    rows = (tmp_path / "out" / "trials.csv").read_text().splitlines()
    assert [r.split(",")[3] for r in rows[1:]] == ["no_value", "ok", "no_value", "ok"]  # status column
    # the tuning table shows the failed defaults as "—" (null in best.json), not a crash
    table = tmp_path / "tables" / "tuning"
    assert main(["report", "tuning", str(tmp_path / "out" / "best.json"), "--out", str(table)]) == 0
    row = next(line for line in table.with_suffix(".md").read_text().splitlines() if "onebp" in line)
    assert "| —" in row and "trial 3" in row


def test_trials_without_the_select_metric_are_named_not_called_diverged(tmp_path, capsys):
    trials = [make_trial(tmp_path, f"trial0{i}", 0.1, **RUN) for i in range(2)]
    for t in trials:
        set_valid(t, {"recall@20": 0.9})
    assert summarize(trials, tmp_path / "out") == 2
    err = one_line(capsys)
    assert "select_metric 'ndcg@20'" in err and "diverged" not in err
    assert not (tmp_path / "out").exists()
