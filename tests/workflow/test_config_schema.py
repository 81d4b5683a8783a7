"""Facts with one home in the code, and the copies that must agree with it.

The workflow's config schema (workflow/schemas/config.schema.yaml) is hand-written so that it reads
well, but some of its lists restate facts whose home is the code: the split kinds
(``onebp.data.splitting.SPLIT_KINDS``), the prepare parameters (``onebp.data.prepare.PrepareParams``,
itself the catalog's ``Defaults`` plus the seed), the custom-dataset formats
(``onebp.data.catalog.CUSTOM_FORMATS``) and the protocols (``TrainConfig.protocol``). These tests fail
as soon as a copy and its home diverge. The paper's per-dataset hyper-parameters live only in the
methods' defaults: a config file that repeats them is a second home, and fails here too.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from pathlib import Path

import pytest
import yaml

from onebp.cli import build_parser
from onebp.config import TrainConfig
from onebp.data.catalog import CATALOG, CUSTOM_FORMATS, Defaults
from onebp.data.prepare import PrepareParams
from onebp.data.splitting import SPLIT_KINDS
from onebp.methods.registry import get_method

REPO = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(REPO / "workflow"))
import onebp_plan  # noqa: E402

SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
PREPARE = SCHEMA["$defs"]["prepare"]["properties"]
DATASET_OPTIONS = SCHEMA["properties"]["dataset_options"]["additionalProperties"]["properties"]


def _subcommand(*names: str) -> argparse.ArgumentParser:
    """The parser of ``onebp <names...>``."""
    parser = build_parser()
    for name in names:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return parser


def test_prepare_parameters_have_one_list() -> None:
    names = [f.name for f in dataclasses.fields(PrepareParams)]
    assert names == [f.name for f in dataclasses.fields(Defaults)] + ["seed"]
    assert PrepareParams() == PrepareParams.from_defaults(Defaults())  # same defaults, seed 0
    assert list(PREPARE) == names
    options = {o for a in _subcommand("data", "prepare")._actions for o in a.option_strings}
    assert {f"--{n.replace('_', '-')}" for n in names} <= options


def test_split_kinds_have_one_list() -> None:
    assert PREPARE["split"]["enum"] == list(SPLIT_KINDS)
    assert all(ds.defaults.split in SPLIT_KINDS for ds in CATALOG.values())
    split = next(a for a in _subcommand("data", "prepare")._actions if "--split" in a.option_strings)
    assert split.help == " | ".join(SPLIT_KINDS)


def test_custom_formats_and_sources_have_one_list() -> None:
    assert DATASET_OPTIONS["format"]["enum"] == list(CUSTOM_FORMATS)
    assert set(onebp_plan.SOURCE_KEYS) <= set(DATASET_OPTIONS)


def test_protocols_have_one_list() -> None:
    protocols = list(typing.get_args(typing.get_type_hints(TrainConfig)["protocol"]))
    assert SCHEMA["properties"]["protocols"]["items"]["enum"] == protocols
    sweep = SCHEMA["properties"]["sweeps"]["items"]["properties"]["protocols"]
    assert sweep["items"]["enum"] == protocols


def test_schema_default_datasets_are_in_the_catalog() -> None:
    assert set(SCHEMA["properties"]["datasets"]["default"]) <= set(CATALOG)


@pytest.mark.parametrize("path", ["config.yaml", *sorted(p.relative_to(REPO).as_posix()
                                                          for p in (REPO / "config").glob("*.yaml"))])
def test_configs_do_not_repeat_method_defaults(path: str) -> None:
    """``method_params`` is for overrides; a value equal to the method's own default for that
    dataset is a copy of a fact whose home is the method (e.g. ``onebp.methods.onebp.PAPER_DEFAULTS``)."""
    cfg = yaml.safe_load((REPO / path).read_text()) or {}
    copies = []
    for method, per_dataset in (cfg.get("method_params") or {}).items():
        defaults = get_method(method).defaults
        for ds, overrides in (per_dataset or {}).items():
            own = {**defaults.get("*", {}), **(defaults.get(ds, {}) if ds != "*" else {})}
            copies += [f"{method}.{ds}.{k}" for k, v in (overrides or {}).items() if k in own and own[k] == v]
    assert not copies, f"{path}: method_params repeats the methods' defaults: {copies}"


def test_paper_defaults_reach_onebp_and_twobp() -> None:
    """The paper's table (docs/method.md) is what onebp and its TwoBP twin resolve to."""
    from onebp.config import resolve_config

    for name in ("onebp", "twobp"):
        m = get_method(name)
        cfg = resolve_config(m.name, m.params, m.defaults, "ml-1m", {})
        assert (cfg.dim, cfg.lr, cfg.l2, cfg.beta, cfg.epochs) == (128, 1e-3, 1e-6, 0.99, 200)
        cfg = resolve_config(m.name, m.params, m.defaults, "yelp2018", {})
        beta = 0.999 if m.onebp_update else TrainConfig().beta  # β is the OneBP update's: twobp's stays unset
        assert (cfg.dim, cfg.lr, cfg.l2, cfg.beta, cfg.epochs) == (2048, 5e-5, 0.0, beta, 1800)
