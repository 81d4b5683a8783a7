"""Method-specific settings belong to their method (issue 17, item 2): the OneBP update's settings
(``beta``, ``aggregation``, ``duplicate_users``) only for methods with a OneBP update
(``Method.onebp_update``), a baseline's own params only for that baseline — refused in one line
(exit 2) anywhere else, in ``--set`` and in a method's defaults alike. The declarations must match
what the methods build, and every method's defaults, tuning space and the workflow presets resolve."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from onebp.cli import main
from onebp.config import refused_settings, resolve_config
from onebp.data.split_format import load_split
from onebp.errors import UserError
from onebp.methods.registry import discover, get_method, method_names
from onebp.model.updates import OneBP

REPO = Path(__file__).resolve().parent.parent.parent
ONEBP_SETTINGS = {"beta": "0.5", "aggregation": "none", "duplicate_users": "mean"}


@pytest.fixture(scope="module")
def methods():
    discover()
    return {name: get_method(name) for name in method_names()}


def resolve(m, dataset: str = "tiny", overrides: dict | None = None):
    return resolve_config(m.name, m.params, m.defaults, dataset, overrides or {}, onebp_update=m.onebp_update)


def test_the_onebp_update_settings_are_the_update_sections_own() -> None:
    assert set(refused_settings(False)) == set(ONEBP_SETTINGS) and not refused_settings(True)
    assert not refused_settings(None)


def test_each_method_declares_the_update_it_builds(methods, tiny_split_dir) -> None:
    """``onebp_update`` is a declaration: it must say what ``build`` composes (onebp, the onebp-*
    variants: a OneBP update; twobp and the backprop and one-shot baselines: none)."""
    from onebp.training.trainer import Trainer

    split = load_split(tiny_split_dir)
    assert methods["onebp"].onebp_update and not methods["twobp"].onebp_update
    for name, m in methods.items():
        cfg = resolve(m, split.name, {**m.test_overrides, "dim": 8, "device": "cpu", "threads": 1})
        model = Trainer(m, cfg, split, progress=False).model
        assert isinstance(getattr(model, "strategy", None), OneBP) == m.onebp_update, name


def test_every_method_resolves_its_defaults_test_overrides_and_search_space(methods) -> None:
    """No method's own defaults set a setting it does not own (twobp: OneBP's table less β), and the
    corners of every tuning space are valid settings."""
    for name, m in methods.items():
        for dataset in {"tiny", *m.defaults}:
            resolve(m, dataset if dataset != "*" else "tiny")
        resolve(m, "tiny", dict(m.test_overrides))
        for key, dim in m.search_space.items():
            for corner in dim.extremes():
                resolve(m, "tiny", {key: corner})
        if not m.onebp_update:
            assert not {k for d in m.defaults.values() for k in d} & set(ONEBP_SETTINGS), name


@pytest.mark.parametrize("key", sorted(ONEBP_SETTINGS))
def test_onebp_settings_refused_for_every_method_without_a_onebp_update(methods, key) -> None:
    for name, m in methods.items():
        if m.onebp_update:
            assert getattr(resolve(m, "tiny", {key: ONEBP_SETTINGS[key]}), key) is not None
            continue
        with pytest.raises(UserError, match=rf"^--set {key}=.*method {name!r} has none"):
            resolve(m, "tiny", {key: ONEBP_SETTINGS[key]})
    with pytest.raises(UserError, match=rf"method 'twobp': its defaults for 'ml-1m' set {key}="):
        m = methods["twobp"]
        resolve_config(m.name, m.params, {"ml-1m": {key: ONEBP_SETTINGS[key]}}, "ml-1m", {},
                       onebp_update=False)


def test_a_baselines_own_params_are_unknown_to_every_other_method(methods) -> None:
    own = {name: {f.name for f in dataclasses.fields(m.params)} if m.params else set()
           for name, m in methods.items()}
    checked = 0
    for name, m in methods.items():
        for keys in own.values():
            for key in sorted(keys - own[name]):
                with pytest.raises(UserError, match=rf"^unknown setting {key!r} for method {name!r}"):
                    resolve(m, "tiny", {key: "1"})
                checked += 1
    assert checked > 20  # e.g. lightgcn's n_layers on bpr-mf, simplex's margin on onebp


# -- the command line ------------------------------------------------------------------------------------
CLI = [("twobp", "beta=0.5", "beta"), ("twobp", "aggregation=none", "aggregation"),
       ("twobp", "duplicate_users=mean", "duplicate_users"), ("bpr-mf", "n_layers=2", "n_layers"),
       ("ease", "beta=0.9", "beta"), ("onebp", "lam=10", "lam"), ("lightgcn", "gamma=2", "gamma")]


@pytest.mark.parametrize(("method", "assignment", "key"), CLI, ids=[f"{m}-{a}" for m, a, _ in CLI])
def test_train_refuses_another_methods_setting_in_one_line(tiny_split_dir, tmp_path, capsys, method,
                                                          assignment, key) -> None:
    out = tmp_path / "run"
    # (short settings: were the refusal missing, the run would finish quickly with exit 0)
    code = main(["train", "--data", str(tiny_split_dir), "--method", method, "--set", "epochs=1",
                 "--set", "dim=8", "--set", "threads=1", "--set", assignment, "--out", str(out)])
    _, err = capsys.readouterr()
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{key!r}" in err and f"{method!r}" in err, err
    assert not out.exists()


def test_the_same_setting_is_accepted_where_it_belongs(tiny_split_dir, tmp_path, capsys) -> None:
    # A OneBP variant with an ablation, and in a params file (as tuning's best.json hands it over).
    params = tmp_path / "best.json"
    params.write_text(json.dumps({"params": {"beta": 0.9, "lr": 0.01}}))
    for method in ("onebp", "onebp-bpr"):
        out = tmp_path / method
        code = main(["train", "--data", str(tiny_split_dir), "--method", method, "--params-file", str(params),
                     "--set", "aggregation=item_mean", "--set", "epochs=2", "--set", "eval_every=1",
                     "--set", "dim=8", "--set", "batch_size=128", "--set", "threads=1", "--out", str(out)])
        assert code == 0, capsys.readouterr().err
        cfg = json.loads((out / "config.json").read_text())
        assert (cfg["beta"], cfg["aggregation"]) == (0.9, "item_mean")
    # ... and refused through a params file for a method without the update
    code = main(["train", "--data", str(tiny_split_dir), "--method", "twobp", "--params-file", str(params),
                 "--out", str(tmp_path / "twobp")])
    assert code == 2 and "'beta'" in capsys.readouterr().err and not (tmp_path / "twobp").exists()


# -- the workflow's presets set each setting only where it belongs --------------------------------------
PRESETS = ["config.yaml", *sorted(p.relative_to(REPO).as_posix() for p in (REPO / "config").glob("*.yaml"))]


@pytest.mark.parametrize("path", PRESETS)
def test_workflow_presets_plan_with_settings_owned(path: str) -> None:
    """Every preset (merged over config.yaml as Snakemake merges a --configfile) plans: the plan
    resolves each method's settings like ``onebp train``, ownership included."""
    sys.path.insert(0, str(REPO / "workflow"))
    import onebp_plan

    cfg = json.loads(json.dumps(yaml.safe_load((REPO / "config.yaml").read_text())))
    # an overlay ("Laid over config/<base>.yaml" in its header) is a second --configfile on its base
    base = re.search(r"Laid over (config/[\w.-]+\.yaml)", (REPO / path).read_text())
    for layer in ([base.group(1)] if base else []) + ([path] if path != "config.yaml" else []):
        for key, value in (yaml.safe_load((REPO / layer).read_text()) or {}).items():
            cfg[key] = {**cfg[key], **value} if isinstance(value, dict) and isinstance(cfg.get(key), dict) else value
    onebp_plan.build(cfg)
    for sweep in cfg.get("sweeps") or []:
        if sweep["param"] in ONEBP_SETTINGS:
            assert all(get_method(m).onebp_update for m in sweep.get("methods") or cfg["methods"]), sweep
