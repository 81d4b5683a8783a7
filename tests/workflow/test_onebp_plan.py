"""The workflow's plan (workflow/onebp_plan.py) without Snakemake: paths, hashes, sweeps, errors."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(REPO / "workflow"))
import onebp_plan  # noqa: E402


def config(**changes) -> dict:
    """config.yaml with the schema's defaults, as Snakemake would hand it over, plus changes."""
    # JSON round trip: a private copy (no dict shared with another test or through YAML anchors).
    cfg = json.loads(json.dumps(yaml.safe_load((REPO / "config.yaml").read_text())))
    cfg.update(changes)
    return cfg


def test_default_plan() -> None:
    plan = onebp_plan.build(config())
    assert len(plan.splits) == 4 * 2
    main = [r for r in plan.runs if r.setting.startswith("main-")]
    n_methods = len(cfg_methods := config()["methods"])
    assert n_methods == 9 and {"onebp", "twobp", "ease"} <= set(cfg_methods)
    assert len(main) == 4 * n_methods * 5 * 2
    assert plan.sweep_params == ["beta", "aggregation", "duplicate_users", "n_negatives", "dim", "temperature"]
    # β and τ are tuned (config.yaml's tuning block), so their sweep points are never the main setting;
    # untuned settings at their main value (per_batch, sequential, N 5, dim 32) reuse the main runs.
    tags = {r.setting.rsplit("-", 1)[0] for r in plan.runs if r.dataset == "ml-100k" and r.method == "onebp"}
    assert tags == {"main", "beta=0.9", "beta=0.95", "beta=0.99", "beta=0.995", "beta=0.999",
                    "aggregation=per_epoch", "aggregation=per_epoch_matched", "aggregation=item_mean",
                    "aggregation=none", "duplicate_users=mean", "duplicate_users=official",
                    "n_negatives=1", "n_negatives=20", "n_negatives=100", "dim=16", "dim=64", "dim=128",
                    "temperature=0.1", "temperature=0.2", "temperature=0.5", "temperature=1.0"}
    twobp = {r.setting.rsplit("-", 1)[0] for r in plan.runs if r.dataset == "ml-1m" and r.method == "twobp"}
    assert {"n_negatives=1", "dim=16", "temperature=0.1"} <= twobp and not any(t.startswith("beta") for t in twobp)
    # Without tuning the sweep point equal to the main beta (0.99) reuses the main runs.
    untuned = onebp_plan.build(config(tuning={"n_trials": 0}))
    tags = {r.setting.rsplit("-", 1)[0] for r in untuned.runs if r.dataset == "ml-100k" and r.method == "onebp"}
    assert "beta=0.99" not in tags and "beta=0.9" in tags
    assert "--valid-ratio 0.0" in plan.prepare_cli("ml-1m", "paper")
    assert "--valid-ratio 0.1" in plan.prepare_cli("ml-1m", "clean")
    setting = next(r.setting for r in main if r.dataset == "ml-1m" and r.method == "onebp")
    sets = plan.set_args("ml-1m", "onebp", setting)
    assert "ks=5,10,20" in sets
    # The paper's ml-1m dim comes from the method's defaults (its one home), not from the config.
    assert "dim=" not in sets and plan.resolved("ml-1m", "onebp", setting)["dim"] == 128


def test_changed_setting_changes_only_that_method() -> None:
    base = onebp_plan.build(config())
    cfg = config()
    cfg["method_params"] = {**copy.deepcopy(cfg["method_params"]), "twobp": {"ml-1m": {"lr": 0.01}}}
    changed = onebp_plan.build(cfg)
    diff = set(changed.run_dirs()) ^ set(base.run_dirs())
    assert diff and all("/ml-1m/twobp/" in d for d in diff)
    # A changed preprocessing parameter gives a new split and new runs for that dataset only.
    opts = copy.deepcopy(config()["dataset_options"])  # config.yaml's own (e.g. eval_every) kept
    cfg = config(dataset_options={**opts, "gowalla": {**opts.get("gowalla", {}), "prepare": {"test_ratio": 0.3}}})
    changed = onebp_plan.build(cfg)
    diff = set(changed.run_dirs()) ^ set(base.run_dirs())
    assert diff and all("/gowalla/" in d for d in diff)
    assert changed.splits[("gowalla", "clean")] != base.splits[("gowalla", "clean")]
    assert changed.splits[("ml-1m", "clean")] == base.splits[("ml-1m", "clean")]


def test_dataset_subset_runs_untuned() -> None:
    """dataset_options.<ds>.methods/protocols/tuning: the parity dataset runs OneBP alone, protocol
    paper, at its own settings; no tuning, no sweep and no clean split for it, the rest unchanged."""
    # Sweeps that name no dataset: they skip the dataset with its own methods list.
    sweeps = [{k: v for k, v in s.items() if k != "datasets"} for s in config()["sweeps"]]
    base = onebp_plan.build(config(datasets=["ml-100k"], sweeps=sweeps))
    opts = {"ml-100k-onebp": {"methods": ["onebp"], "protocols": ["paper"], "tuning": False,
                              "params": {"epochs": 2000}}}
    plan = onebp_plan.build(config(datasets=["ml-100k", "ml-100k-onebp"], dataset_options=opts, sweeps=sweeps))
    extra = [r for r in plan.runs if r.dataset == "ml-100k-onebp"]
    assert {(r.method, r.protocol) for r in extra} == {("onebp", "paper")}
    assert sorted(r.seed for r in extra) == config()["seeds"]
    assert {r.setting.split("-")[0] for r in extra} == {"main"}  # no sweep points
    assert ("ml-100k-onebp", "clean") not in plan.splits
    assert plan.tuned_inputs("ml-100k-onebp", "onebp") == []
    assert plan.tuned_inputs("ml-100k", "onebp") != []
    assert plan.settings[("ml-100k-onebp", "onebp", extra[0].setting)]["epochs"] == 2000
    assert [r for r in plan.runs if r.dataset == "ml-100k"] == base.runs


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"dataset_options": {"ml-100k": {"methods": ["lightgcn"]}}, "methods": ["onebp"]},
         "dataset_options.ml-100k.methods"),
        ({"dataset_options": {"ml-100k": {"protocols": ["paper"]}}, "protocols": ["clean"]},
         "dataset_options.ml-100k.protocols"),
        ({"methods": ["onebp", "nope"]}, "nope"),
        ({"datasets": ["ml-100k", "nope"]}, "nope"),
        ({"params": {"learning_rate": 1}}, "learning_rate"),
        ({"params": {"seed": 3}}, "'seed' is set by the workflow"),
        ({"sweeps": [{"param": "betta", "values": [0.5]}]}, "betta"),
        ({"prepare": {"valid_ratio": 0.0}}, "valid_ratio"),
    ],
)
def test_plan_errors_name_the_key(changes: dict, named: str) -> None:
    with pytest.raises(onebp_plan.ConfigError, match=named):
        onebp_plan.build(config(**changes))
