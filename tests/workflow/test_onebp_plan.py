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


def report(**changes) -> dict:
    """config.yaml's report block with changes (a top-level key given to config() replaces the block)."""
    return {**config()["report"], **changes}


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


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        # what the report jobs are given, checked against what the runs will write (else they fail, or
        # mark and draw nothing, after every run has trained)
        ({"report": report(reference="onebpp")}, "report.reference: unknown method 'onebpp'"),
        ({"report": report(metrics=["recall", "recal"])}, "report.metrics: unknown metric 'recal'"),
        ({"report": report(ks=[10, 50])}, "report.ks: cut-off 50 is not evaluated"),
        ({"report": report(metric="ndcg@50")}, "report.metric: cut-off 50 is not evaluated"),
        ({"report": report(metric="ndgc@20")}, "report.metric: unknown metric 'ndgc@20'"),
        # bench.methods / bench.datasets: a misspelt name was timed by no job, or filtered away silently
        ({"bench": {"methods": ["onebp", "onebpp"]}}, "bench.methods: unknown method 'onebpp'"),
        ({"bench": {"datasets": ["ml-100kk"]}}, "bench.datasets: unknown dataset 'ml-100kk'"),
        # a misspelt dataset or method keyed under the options was ignored without a word
        ({"dataset_options": {"ml-100kk": {"params": {"epochs": 1}}}}, "dataset_options: unknown dataset 'ml-100kk'"),
        ({"method_params": {"onebp": {"ml-100kk": {"lr": 0.1}}}}, "method_params.onebp: unknown dataset 'ml-100kk'"),
        ({"method_resources": {"onebpp": {"*": {"mem_mb": 100}}}}, "method_resources: unknown method 'onebpp'"),
        ({"method_resources": {"ease": {"gowalla": {"mem_mb": 64000}, "yelp2019": {"mem_mb": 64000}}}},
         "method_resources.ease: unknown dataset 'yelp2019'"),
    ],
)
def test_report_bench_and_option_names_are_checked(changes: dict, named: str) -> None:
    cfg = config(datasets=["ml-100k"], sweeps=[], **{k: v for k, v in changes.items() if k != "methods"})
    cfg["methods"] = changes.get("methods", cfg["methods"])
    with pytest.raises(onebp_plan.ConfigError, match=named):
        onebp_plan.build(cfg)


def test_a_staged_overlay_without_the_reference_method_builds_with_a_warning() -> None:
    """`--until train` with an overlay naming a few methods never reaches the report: a registered
    reference that is not run is said (the report jobs refuse it in one line), not refused."""
    cfg = config(datasets=["ml-100k"], sweeps=[], methods=["lightgcn"])
    with pytest.warns(UserWarning, match="report.reference: 'onebp' is not in methods"):
        onebp_plan.build(cfg)


def test_names_of_known_datasets_not_run_and_star_stay_allowed() -> None:
    """A catalog dataset this config does not run, a dataset that dataset_options defines by its url, and
    "*" may be keyed under the options (a preset lists options for datasets an overlay narrows away)."""
    cfg = config(datasets=["ml-100k"], methods=["onebp", "twobp"], sweeps=[], tuning={"n_trials": 0},
                 bench={"datasets": ["ml-100k", "ml-1m"], "methods": ["onebp", "ease"]},
                 dataset_options={"gowalla": {"params": {"eval_every": 5}},
                                  "mine": {"url": "http://example.invalid/u.data", "format": "u.data"}},
                 method_params={"onebp": {"*": {"lr": 0.01}, "ml-1m": {"dim": 64}, "mine": {"dim": 8}}},
                 method_resources={"ease": {"*": {"mem_mb": 100}, "yelp2018": {"mem_mb": 64000}}})
    plan = onebp_plan.build(cfg)
    assert {r.dataset for r in plan.runs} == {"ml-100k"}


def test_options_of_a_dataset_not_run_do_not_constrain_a_narrowing_overlay() -> None:
    """A staging overlay (`datasets: [ml-100k]`, `methods: [lightgcn]`, protocol clean) over a preset whose
    dataset_options name the parity dataset's OneBP and protocol paper is accepted; a misspelt method
    there is still refused."""
    opts = {"ml-100k-onebp": {"methods": ["onebp"], "protocols": ["paper"]}}
    plan = onebp_plan.build(config(datasets=["ml-100k"], methods=["lightgcn"], protocols=["clean"],
                                   dataset_options=opts, sweeps=[], report=report(reference="lightgcn")))
    assert {(r.dataset, r.method) for r in plan.runs} == {("ml-100k", "lightgcn")}
    with pytest.raises(onebp_plan.ConfigError, match="dataset_options.ml-100k-onebp.methods: unknown method 'onebpp'"):
        onebp_plan.build(config(datasets=["ml-100k"], dataset_options={"ml-100k-onebp": {"methods": ["onebpp"]}}))


def _train_as_planned(plan, root, data) -> None:
    """Every planned run and trial, trained by `onebp train` with the arguments the rules give it."""
    import shlex

    from onebp.cli import main as cli

    jobs = []
    for (ds, method), tuning in (plan.tuning.methods.items() if plan.tuning else ()):
        for trial_id, _ in tuning.trials:
            jobs.append((f"{plan.tuning.directory(ds, method)}/trials/{trial_id}",
                         shlex.split(plan.tuning.trial_set_args(ds, method, trial_id)), method))
    for run in plan.runs:
        sets = shlex.split(plan.set_args(run.dataset, run.method, run.setting))
        jobs.append((run.run_dir, [*sets, "--set", f"seed={run.seed}", "--set", f"protocol={run.protocol}"],
                     run.method))
    for out, sets, method in jobs:  # the main runs without --params-file: tuned keys are not compared
        assert cli(["train", "--data", str(data), "--method", method, *sets, "--set", "dataset=ml-100k",
                    "--set", "threads=1", "--out", str(root / out)]) == 0


def _record(path, **changes) -> None:
    recorded = json.loads(path.read_text())
    params = {**recorded["params"], **{k: v for k, v in changes.items() if k in recorded["params"]}}
    path.write_text(json.dumps({**recorded, **{k: v for k, v in changes.items() if k not in params}, "params": params}))


def test_stale_runs_names_a_run_whose_recorded_settings_the_plan_no_longer_gives(tiny_split_dir, tmp_path) -> None:
    """Runs and trials written by `onebp train` from the plan's own arguments are not stale; one whose
    config.json records another value of a setting (a method default changed under the same path:
    EASE's λ on ML-1M) is named with the key and both values; a tuned key is not compared (it comes
    from best.json)."""
    tiny = {"epochs": 2, "eval_every": 1, "dim": 4, "batch_size": 64}
    untuned = onebp_plan.build(config(datasets=["ml-100k"], methods=["ease"], seeds=[0], protocols=["clean"],
                                      params=tiny, sweeps=[], tuning={"n_trials": 0}, report=report(reference="ease")))
    _train_as_planned(untuned, tmp_path, tiny_split_dir)
    assert onebp_plan.stale_runs(untuned, str(tmp_path)) == []
    ease = untuned.runs[0].run_dir
    _record(tmp_path / ease / "config.json", lam=123.0)
    assert onebp_plan.stale_runs(untuned, str(tmp_path)) == [
        f"{ease}: ran with lam=123.0 (the plan now resolves 300.0)"]

    tuned = onebp_plan.build(config(
        datasets=["ml-100k"], methods=["onebp"], seeds=[0], protocols=["clean"], params=tiny, sweeps=[],
        tuning={"n_trials": 2, "max_epochs": 2, "eval_every": 1, "patience_epochs": 2, "min_epochs": 0,
                "sampler": "qmc", "seed": 0, "run_seed": 0}))
    root = tmp_path / "tuned"
    _train_as_planned(tuned, root, tiny_split_dir)
    assert onebp_plan.stale_runs(tuned, str(root)) == []
    keys = tuned.tuning.methods[("ml-100k", "onebp")].keys
    assert "dim" not in keys and "temperature" in keys
    run = tuned.runs[0].run_dir
    _record(root / run / "config.json", temperature=0.5)  # a tuned value: best.json's business
    assert onebp_plan.stale_runs(tuned, str(root)) == []
    _record(root / run / "config.json", dim=5)
    trial_id, overrides = tuned.tuning.methods[("ml-100k", "onebp")].trials[1]
    trial = f"{tuned.tuning.directory('ml-100k', 'onebp')}/trials/{trial_id}"
    _record(root / trial / "config.json", temperature=7.0)
    assert onebp_plan.stale_runs(tuned, str(root)) == [
        f"{run}: ran with dim=5 (the plan now resolves 4)",
        f"{trial}: ran with temperature=7.0 (the plan now resolves {float(overrides['temperature'])!r})"]
