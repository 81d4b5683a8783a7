"""Paired randomness: twins (onebp/twobp, onebp-bpr/bpr-mf) at one seed start from identical tables
and draw identical first-epoch shuffles and negatives; config.json records the derived seeds."""

from __future__ import annotations

import json

import pytest
import torch

from onebp.cli import main
from onebp.config import resolve_config
from onebp.data.split_format import load_split
from onebp.methods.registry import get_method
from onebp.training.trainer import Trainer

FAST = {"epochs": 6, "eval_every": 2, "batch_size": 128, "dim": 8, "lr": 0.01, "threads": 1}


def make_trainer(split, method="onebp", **overrides):
    m = get_method(method)
    cfg = resolve_config(m.name, m.params, m.defaults, split.name, {**FAST, **overrides})
    return Trainer(m, cfg, split, log=lambda msg: None)


@pytest.fixture(scope="module")
def split(tiny_split_dir):
    return load_split(tiny_split_dir)


# -- twins ------------------------------------------------------------------------------------------
def _first_epoch(trainer):
    """The initial tables, and the (users, positives, negatives) of the first epoch."""
    tables = {k: v.clone() for k, v in trainer.model.encoder.state_dict().items()}
    seen = {}
    original = trainer.model.begin_epoch

    def record(users, pos, neg):
        seen.update(users=users.clone(), pos=pos.clone(), neg=None if neg is None else neg.clone())
        original(users, pos, neg)

    trainer.model.begin_epoch = record
    trainer.run_epoch()
    return tables, seen


@pytest.mark.parametrize("pair", [("onebp", "twobp"), ("onebp-bpr", "bpr-mf")])
def test_twins_start_from_identical_tables_and_draw_identical_negatives(split, pair):
    a, b = (make_trainer(split, m, n_negatives=3) for m in pair)
    assert a.seeds == b.seeds
    tables_a, epoch_a = _first_epoch(a)
    tables_b, epoch_b = _first_epoch(b)
    for key in ("user_table", "item_table"):
        assert torch.equal(tables_a[key], tables_b[key]), key
    for key in ("users", "pos", "neg"):
        assert torch.equal(epoch_a[key], epoch_b[key]), key
    # Another seed is another pairing.
    c = make_trainer(split, pair[1], n_negatives=3, seed=1)
    tables_c, epoch_c = _first_epoch(c)
    assert not torch.equal(tables_a["item_table"], tables_c["item_table"])
    assert not torch.equal(epoch_a["neg"], epoch_c["neg"])


def test_config_json_records_the_derived_seeds(tiny_split_dir, tmp_path, capsys):
    seeds = []
    for method in ("onebp", "twobp"):
        out = tmp_path / method
        assert main(["train", "--data", str(tiny_split_dir), "--method", method, "--set", "epochs=2",
                     "--set", "dim=8", "--set", "batch_size=128", "--out", str(out)]) == 0
        seeds.append(json.loads((out / "config.json").read_text())["derived_seeds"])
    capsys.readouterr()
    assert seeds[0] == seeds[1] and set(seeds[0]) == {"init", "sampling"}
