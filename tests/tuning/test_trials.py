"""Tuning: every method's search space is valid with its defaults as trial 0; trials are drawn
deterministically; a trial never evaluates the test part; tuning picks the best validation value on
planted data."""

from __future__ import annotations

import json
import math

import pytest

from onebp.cli import main
from onebp.config import resolve_config, setting_types
from onebp.data.split_format import load_split, save_split
from onebp.data.synthetic import SyntheticConfig, synthetic_split
from onebp.errors import UserError
from onebp.methods.registry import get_method, method_names
from onebp.methods.search_space import Choice, IntRange, LogUniform, Uniform, check_space
from onebp.training.trainer import ForbiddenTestAccess, Trainer
from onebp.tuning.trials import TuningBudget, best_trial, draw_trials, method_trials, summarize

FAST = {"epochs": 6, "eval_every": 2, "batch_size": 128, "dim": 8, "lr": 0.01, "threads": 1}


def make_trainer(split, method="onebp", **overrides):
    m = get_method(method)
    cfg = resolve_config(m.name, m.params, m.defaults, split.name, {**FAST, **overrides})
    return Trainer(m, cfg, split, log=lambda msg: None)


@pytest.fixture(scope="module")
def split(tiny_split_dir):
    return load_split(tiny_split_dir)


# -- search spaces ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", method_names())
def test_search_space_is_valid_and_trial_0_is_the_defaults(name):
    m = get_method(name)
    space = dict(m.search_space)
    if name == "mostpop":
        assert space == {}  # nothing to tune
        return
    assert space, f"{name}: declares no search space"
    check_space(name, space, setting_types(m.params))
    for dataset in sorted(set(m.defaults) - {"*"} | {"ml-100k", "some-new-dataset"}):
        cfg = resolve_config(m.name, m.params, m.defaults, dataset, {}).to_dict()
        resolved = {**cfg.pop("params"), **cfg}
        for key, dim in space.items():
            assert dim.contains(resolved[key]), f"{name}/{dataset}: default {key}={resolved[key]!r} outside {dim}"
        trials = method_trials(m, dataset, {}, TuningBudget(n_trials=5))
        assert trials[0] == {k: resolved[k] for k in space}
        assert len(trials) == 5 and all(trials[i] != trials[0] for i in range(1, 5))
        for t in trials[1:]:
            for key, dim in space.items():
                assert dim.contains(t[key]), (name, key, t[key], dim)


def test_a_bad_search_space_is_named():
    known = setting_types(None)
    with pytest.raises(UserError, match="'nope': not a setting"):
        check_space("m", {"nope": Uniform(0, 1)}, known)
    with pytest.raises(UserError, match="'lr': LogUniform needs 0 < low < high"):
        check_space("m", {"lr": LogUniform(0.0, 1.0)}, known)
    with pytest.raises(UserError, match="'dim': integer setting with a float range"):
        check_space("m", {"dim": Uniform(8, 64)}, known)
    with pytest.raises(UserError, match="'fused': bool setting needs a Choice"):
        check_space("m", {"fused": IntRange(0, 1)}, known)


def test_drawn_trials_are_deterministic_inside_the_space_and_seed_dependent():
    space = {"lr": LogUniform(1e-4, 1e-1), "l2": Choice((0.0, 1e-6, 1e-4)), "beta": Uniform(0.9, 0.999),
             "n_layers": IntRange(1, 4)}
    defaults = {"lr": 0.5, "l2": 1e-5, "beta": 0.99, "n_layers": 3}  # lr and l2 outside the space
    for sampler in ("qmc", "random"):
        a = draw_trials(space, defaults, 8, sampler, seed=0)
        assert a == draw_trials(space, defaults, 8, sampler, seed=0)
        assert a != draw_trials(space, defaults, 8, sampler, seed=1)
        assert a[0] == defaults  # kept as given, even outside the space
        assert len({json.dumps(t, sort_keys=True) for t in a}) == 8
        for t in a[1:]:
            assert all(space[k].contains(v) for k, v in t.items()), t


# -- a trial never touches the test part -----------------------------------------------------------
def test_a_tuning_trial_cannot_evaluate_the_test_part(split):
    t = make_trainer(split, tuning_trial=True)
    assert t.data.test is None  # not even loaded
    with pytest.raises(ForbiddenTestAccess):
        t.evaluate("test")
    record = t.fit()
    assert "test" not in record and record["tuning_trial"] and record["valid"]
    assert t.test_metrics is None
    with pytest.raises(UserError, match="tuning_trial=true needs protocol clean"):
        make_trainer(split, tuning_trial=True, protocol="paper")


def test_a_trial_run_directory_has_no_test_results(tiny_split_dir, tmp_path, capsys):
    out = tmp_path / "trial"
    assert main(["train", "--data", str(tiny_split_dir), "--method", "twobp", "--set", "epochs=4",
                 "--set", "eval_every=2", "--set", "dim=8", "--set", "tuning_trial=true", "--out", str(out)]) == 0
    capsys.readouterr()
    metrics = json.loads((out / "metrics.json").read_text())
    assert "test" not in metrics and not (out / "per_user_test.npz").exists()
    assert not (out / "checkpoint.pt").exists()  # a finished trial is never resumed
    assert not any(k.startswith("test/") for k in (out / "curve.csv").read_text().splitlines()[0].split(","))


# -- tuning picks the best validation value --------------------------------------------------------
@pytest.fixture(scope="module")
def planted_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("planted") / "planted"
    save_split(synthetic_split(SyntheticConfig(n_users=200, n_items=100, mean_degree=20, signal=4.0,
                                               popularity_exponent=0.5, seed=3)), out)
    return out


def test_tuning_selects_the_trial_with_the_best_validation_value(planted_dir, tmp_path, capsys):
    budget = TuningBudget(n_trials=3, max_epochs=20, eval_every=5, patience_epochs=20)
    # Trial 0 cannot learn (lr 1e-7); the two others do, at different speeds.
    trials = [{"lr": 1e-7, "l2": 0.0}, {"lr": 0.003, "l2": 0.0}, {"lr": 0.03, "l2": 0.0}]
    dirs = []
    for i, params in enumerate(trials):
        out = tmp_path / f"trial{i}"
        sets = [a for k, v in {**params, "epochs": budget.max_epochs, "eval_every": budget.eval_every,
                               "patience_epochs": budget.patience_epochs, "tuning_trial": "true",
                               "dim": 16, "batch_size": 128}.items() for a in ("--set", f"{k}={v}")]
        assert main(["train", "--data", str(planted_dir), "--method", "bpr-mf", *sets, "--out", str(out)]) == 0
        dirs.append(out)
    capsys.readouterr()
    best = summarize("bpr-mf", "planted", ["lr", "l2"], dirs, tmp_path / "tuning", budget.to_dict())
    rows = (tmp_path / "tuning" / "trials.csv").read_text().splitlines()
    assert rows[0].startswith("trial,lr,l2,status,select_metric,value") and len(rows) == 4
    values = [json.loads((d / "metrics.json").read_text())["valid"]["ndcg@20"] for d in dirs]
    winner = max(range(3), key=values.__getitem__)
    assert len(set(values)) == 3 and winner != 0
    assert best["trial"] == winner and best["params"] == trials[winner]
    assert best["valid_value"] == values[winner] > values[0] + 0.05 and best["default_value"] == values[0]
    assert json.loads((tmp_path / "tuning" / "best.json").read_text()) == best
    # The main run reads best.json: its settings become the run's, and --set still wins.
    run = tmp_path / "main"
    assert main(["train", "--data", str(planted_dir), "--method", "bpr-mf", "--params-file",
                 str(tmp_path / "tuning" / "best.json"), "--set", "epochs=2", "--set", "l2=1e-6",
                 "--out", str(run)]) == 0
    capsys.readouterr()
    cfg = json.loads((run / "config.json").read_text())
    assert (cfg["lr"], cfg["l2"]) == (trials[winner]["lr"], 1e-6)


def test_best_trial_ties_go_to_the_defaults_and_diverged_trials_are_skipped():
    rows = [{"trial": 0, "value": 0.3}, {"trial": 1, "value": math.nan}, {"trial": 2, "value": 0.3}]
    assert best_trial(rows)["trial"] == 0
    with pytest.raises(UserError, match="no trial finished"):
        best_trial([{"trial": 0, "value": math.nan}])


def test_a_diverging_trial_is_recorded_not_fatal(tiny_split_dir, tmp_path, capsys):
    out = tmp_path / "diverged"
    assert main(["train", "--data", str(tiny_split_dir), "--method", "twobp", "--set", "lr=1e38",
                 "--set", "fused=false", "--set", "epochs=3", "--set", "tuning_trial=true", "--out", str(out)]) == 0
    capsys.readouterr()
    assert json.loads((out / "metrics.json").read_text())["status"] == "diverged"
    # Not a trial: the same divergence is an error (exit code 2), as before.
    assert main(["train", "--data", str(tiny_split_dir), "--method", "twobp", "--set", "lr=1e38",
                 "--set", "fused=false", "--set", "epochs=3", "--out", str(tmp_path / "run")]) == 2
    assert "training loss is nan" in capsys.readouterr().err


def test_one_shot_methods_are_validated_so_tuning_can_select_their_settings(planted_dir, tmp_path, capsys):
    # EASE is fitted in one shot; a trial must still report its validation value (it once reported
    # none, and every EASE tuning ended in "no trial finished with a finite validation value").
    lams = [1e6, 10.0]  # a huge λ shrinks the model toward nothing; a small one fits the planted data
    dirs = []
    for i, lam in enumerate(lams):
        out = tmp_path / f"ease{i}"
        assert main(["train", "--data", str(planted_dir), "--method", "ease", "--set", f"lam={lam}",
                     "--set", "tuning_trial=true", "--out", str(out)]) == 0
        dirs.append(out)
    capsys.readouterr()
    values = [json.loads((d / "metrics.json").read_text())["valid"]["ndcg@20"] for d in dirs]
    assert all(math.isfinite(v) for v in values) and values[1] != values[0]
    best = summarize("ease", "planted", ["lam"], dirs, tmp_path / "tuning")
    assert best["trial"] == max(range(2), key=values.__getitem__)
