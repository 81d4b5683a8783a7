"""The workflow's tuning plan (workflow/tuning_plan.py through onebp_plan.build), without Snakemake."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from onebp.tuning.trials import SAMPLERS, TuningBudget

REPO = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(REPO / "workflow"))
import onebp_plan  # noqa: E402

SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())


def config(**changes) -> dict:
    cfg = json.loads(json.dumps(yaml.safe_load((REPO / "config.yaml").read_text())))
    cfg.update({"datasets": ["ml-100k"], "sweeps": [], **changes})
    return cfg


def test_schema_tuning_keys_are_the_budget_fields() -> None:
    block = SCHEMA["properties"]["tuning"]["properties"]
    assert list(block) == list(TuningBudget.__dataclass_fields__)
    assert block["sampler"]["enum"] == list(SAMPLERS)


def test_no_tuning_block_means_no_trials() -> None:
    plan = onebp_plan.build(config(tuning={"n_trials": 0}))
    assert plan.tuning is None and plan.tuned_inputs("ml-100k", "onebp") == []
    assert "--params-file" not in plan.params_file_args("ml-100k", "onebp")


def test_every_tuned_method_gets_the_same_budget_and_its_runs_read_best_json() -> None:
    plan = onebp_plan.build(config(tuning={"n_trials": 3, "max_epochs": 50, "patience_epochs": 20}))
    methods = config()["methods"]
    tuned = {m for (_, m) in plan.tuning.methods}
    assert tuned == set(methods) - {"mostpop"}  # nothing to tune in a popularity ranking
    for m in tuned:
        dirs = plan.tuning.trial_dirs("ml-100k", m)
        assert len(dirs) == 3 and dirs[0].startswith(f"results/tuning/ml-100k/{m}/trials/trial00-")
        for _, overrides in plan.tuning.methods[("ml-100k", m)].trials:
            assert overrides["epochs"] == 50 and overrides["patience_epochs"] == 20
            assert overrides["tuning_trial"] is True and overrides["protocol"] == "clean"
        assert plan.tuned_inputs("ml-100k", m) == [f"results/tuning/ml-100k/{m}/best.json"]
        # The main runs take the tuned keys from best.json, not from --set.
        main = next(r.setting for r in plan.runs if r.method == m)
        sets = plan.set_args("ml-100k", m, main)
        assert all(f"--set {k}=" not in sets for k in plan.tuning.keys_of("ml-100k", m))
    assert plan.tuned_inputs("ml-100k", "mostpop") == []
    # A changed budget is a new tuning: new trial directories and new main-run directories.
    other = onebp_plan.build(config(tuning={"n_trials": 3, "max_epochs": 60, "patience_epochs": 20}))
    untouched = {r.run_dir for r in plan.runs if r.method == "mostpop"}
    assert untouched and untouched <= set(other.run_dirs())  # nothing tuned, nothing rerun
    for m in tuned:
        assert other.tuning.trial_dirs("ml-100k", m) != plan.tuning.trial_dirs("ml-100k", m)
        assert {r.run_dir for r in other.runs if r.method == m}.isdisjoint(
            r.run_dir for r in plan.runs if r.method == m)


def test_paper_only_study_still_tunes_on_the_clean_split() -> None:
    plan = onebp_plan.build(config(protocols=["paper"], tuning={"n_trials": 2}))
    assert ("ml-100k", "clean") in plan.splits and plan.split_dir("ml-100k", "clean").endswith(
        plan.splits[("ml-100k", "clean")])
    assert {r.protocol for r in plan.runs} == {"paper"}


def test_a_sweep_over_a_tuned_setting_keeps_every_point() -> None:
    sweep = [{"param": "beta", "values": [0.9, 0.99], "datasets": ["ml-100k"], "methods": ["onebp"]}]
    untuned = onebp_plan.build(config(sweeps=sweep, tuning={"n_trials": 0}))
    tuned = onebp_plan.build(config(sweeps=sweep, tuning={"n_trials": 2}))
    points = lambda plan: {s for (_, m, s) in plan.settings if m == "onebp" and s.startswith("beta=")}  # noqa: E731
    assert len(points(untuned)) == 1  # 0.99 is the default: the main runs are that point
    assert len(points(tuned)) == 2  # the tuned β is only known after tuning


def test_the_ml_100k_study_preset_tunes_every_registered_method() -> None:
    from onebp.methods.registry import method_names

    cfg = json.loads(json.dumps(yaml.safe_load((REPO / "config.yaml").read_text())))
    preset = yaml.safe_load((REPO / "config" / "ml-100k-study-200.yaml").read_text())
    for key, value in preset.items():  # Snakemake's merge: dicts merge, everything else replaces
        cfg[key] = {**cfg[key], **value} if isinstance(value, dict) and isinstance(cfg.get(key), dict) else value
    plan = onebp_plan.build(cfg)
    assert set(cfg["methods"]) == set(method_names())
    assert {m for (_, m) in plan.tuning.methods} == set(method_names()) - {"mostpop"}
    assert all(len(t.trials) == 8 for t in plan.tuning.methods.values())
    main = [r for r in plan.runs if r.setting.startswith("main-") and r.dataset == "ml-100k"]
    assert len(main) == len(method_names()) * 5 * 2
    assert all("--set epochs=200" in plan.set_args(r.dataset, r.method, r.setting) for r in main)
    # The parity runs: OneBP alone on the official split, untuned, protocol paper, the official 2000 epochs.
    parity = [r for r in plan.runs if r.dataset == "ml-100k-onebp"]
    assert {(r.method, r.protocol, r.setting.split("-")[0]) for r in parity} == {("onebp", "paper", "main")}
    assert len(parity) == 5 and plan.tuned_inputs("ml-100k-onebp", "onebp") == []
    assert all("--set epochs=2000" in plan.set_args(r.dataset, r.method, r.setting) for r in parity)


def test_tuning_trial_cannot_be_set_by_the_config() -> None:
    import pytest

    with pytest.raises(onebp_plan.ConfigError, match="'tuning_trial' is set by the workflow"):
        onebp_plan.build(config(params={"tuning_trial": True}))
