"""Trainer: determinism, resume after a kill, protocols, divergence, early stopping in epochs, and
learning on planted data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from onebp.config import resolve_config
from onebp.data.split_format import load_split
from onebp.data.synthetic import SyntheticConfig, synthetic_split
from onebp.errors import UserError
from onebp.methods.registry import get_method
from onebp.model.interactions import UserItems
from onebp.training.evaluate import full_ranking_metrics
from onebp.training.trainer import Trainer, TrainingDiverged

FAST = {"epochs": 12, "eval_every": 3, "batch_size": 128, "dim": 8, "lr": 0.01, "threads": 1}


def trainer(split, method="onebp", run_dir=None, **overrides):
    m = get_method(method)
    cfg = resolve_config(m.name, m.params, m.defaults, split.name, {**FAST, **overrides})
    return Trainer(m, cfg, split, run_dir=run_dir, log=lambda msg: None)


@pytest.fixture(scope="module")
def split(tiny_split_dir):
    return load_split(tiny_split_dir)


@pytest.mark.parametrize("method", ["onebp", "twobp"])
def test_same_seed_same_metrics_different_seed_different(split, method):
    a = trainer(split, method).fit()
    b = trainer(split, method).fit()
    c = trainer(split, method, seed=1).fit()
    assert a["test"] == b["test"]
    assert a["valid"] == b["valid"]
    assert a["test"] != c["test"]


def test_resumed_run_equals_uninterrupted_run(split, tmp_path, monkeypatch):
    full = trainer(split, run_dir=tmp_path / "full").fit()

    crashing = trainer(split, run_dir=tmp_path / "crash", checkpoint_minutes=0)  # one after every epoch
    original = Trainer.run_epoch

    def run_epoch_then_crash(self):
        if self.state.epoch == 7:  # after the checkpoint of epoch 7, in the middle of the run
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(Trainer, "run_epoch", run_epoch_then_crash)
    with pytest.raises(KeyboardInterrupt):
        crashing.fit()
    monkeypatch.setattr(Trainer, "run_epoch", original)
    resumed_trainer = trainer(split, run_dir=tmp_path / "crash", checkpoint_minutes=0)
    assert resumed_trainer.checkpoints.resume(resumed_trainer.model, resumed_trainer.generator).epoch == 7
    resumed_trainer = trainer(split, run_dir=tmp_path / "crash", checkpoint_minutes=0)
    resumed = resumed_trainer.fit()
    assert resumed_trainer.state.epoch == 12
    assert resumed["test"] == full["test"]
    assert resumed["selected_epoch"] == full["selected_epoch"]
    losses = [r["loss"] for r in resumed_trainer.state.curve]
    assert len(losses) == 12


def test_killed_process_resumes_to_the_same_numbers(tiny_split_dir, tmp_path):
    args = [sys.executable, "-m", "onebp", "train", "--data", str(tiny_split_dir), "--method", "onebp",
            "--set", "epochs=400", "--set", "eval_every=5", "--set", "patience_epochs=5000",
            "--set", "batch_size=64", "--set", "dim=8", "--set", "threads=1",
            "--set", "checkpoint_minutes=0"]  # a checkpoint after every epoch, so there is one to kill
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    subprocess.run([*args, "--out", str(tmp_path / "full")], check=True, env=env, capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*args, "--out", str(killed)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (killed / "checkpoint.pt").exists():
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "metrics.json").exists(), "finished before it could be killed"
    done = subprocess.run([*args, "--out", str(killed)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "resumed from" in done.stderr
    a = json.loads((tmp_path / "full" / "metrics.json").read_text())
    b = json.loads((killed / "metrics.json").read_text())
    assert a["test"] == b["test"] and a["selected_epoch"] == b["selected_epoch"]
    assert not list(killed.glob(".*.tmp")), "a temporary file was left behind"


def test_clean_protocol_needs_validation(tiny_split_no_valid_dir):
    with pytest.raises(UserError, match="needs a validation part"):
        trainer(load_split(tiny_split_no_valid_dir)).fit()


def test_paper_protocol_records_best_on_test(tiny_split_no_valid_dir):
    out = trainer(load_split(tiny_split_no_valid_dir), protocol="paper").fit()
    assert out["selection"].startswith("last epoch")
    assert out["selected_epoch"] == 12
    for key, value in out["test"].items():
        assert out["best_on_test"][key] >= value - 1e-12
        assert 1 <= out["best_on_test_epoch"][key] <= 12


def test_early_stopping_selects_best_validation_epoch(split):
    t = trainer(split, epochs=60, eval_every=1, patience_epochs=2, lr=0.2)
    out = t.fit()
    evaluated = [r for r in t.state.curve if "valid/ndcg@20" in r]
    best = max(evaluated, key=lambda r: r["valid/ndcg@20"])
    assert out["selected_epoch"] == best["epoch"]
    assert out["stopped_early"] and out["epochs_run"] < 60
    assert out["valid"]["ndcg@20"] == best["valid/ndcg@20"]


def test_nan_loss_stops_with_the_epoch(split):
    with pytest.raises(TrainingDiverged, match="epoch 1: training loss is nan"):
        trainer(split, method="twobp", lr=1e38, fused=False).fit()


def test_checkpoint_of_other_settings_is_refused(split, tmp_path):
    trainer(split, run_dir=tmp_path, epochs=3).fit()
    with pytest.raises(UserError, match="different settings .*lr"):
        trainer(split, run_dir=tmp_path, epochs=3, lr=0.5).fit()


@pytest.mark.slow
@pytest.mark.parametrize("method", ["onebp", "twobp"])
def test_learns_three_times_most_popular_on_planted_data(method):
    planted = synthetic_split(SyntheticConfig(n_users=400, n_items=300, mean_degree=25, signal=6.0,
                                              popularity_exponent=0.5, seed=1))
    n_u, n_i = planted.n_users, planted.n_items
    train, valid, test = (UserItems.from_pairs(planted.part(p), n_u, n_i) for p in ("train", "valid", "test"))
    popularity = torch.bincount(train.indices, minlength=n_i).float()
    most_pop = full_ranking_metrics(lambda u: popularity.expand(len(u), -1), test, [train, valid])
    out = trainer(planted, method, epochs=40, eval_every=5, patience_epochs=25, batch_size=256, dim=16, l2=0.0).fit()
    assert out["test"]["recall@20"] >= 3 * most_pop.mean["recall@20"], (out["test"], most_pop.mean)


def test_batch_larger_than_train_set_is_an_error(split):
    with pytest.raises(UserError, match="no batch to train on"):
        trainer(split, batch_size=10**6).fit()
    assert trainer(split, batch_size=10**6, drop_last=False, epochs=1).fit()["epochs_run"] == 1


# -- early stopping in epochs ----------------------------------------------------------------------
def test_patience_counts_epochs_and_min_epochs_holds_the_stop(split):
    fast = trainer(split, epochs=60, eval_every=1, patience_epochs=2, lr=0.2).fit()
    assert fast["stopped_early"] and fast["epochs_run"] - fast["selected_epoch"] == 2
    sparse = trainer(split, epochs=60, eval_every=4, patience_epochs=2, lr=0.2).fit()
    assert sparse["stopped_early"] and sparse["epochs_run"] - sparse["selected_epoch"] == 4  # next evaluation
    held = trainer(split, epochs=60, eval_every=1, patience_epochs=2, min_epochs=40, lr=0.2).fit()
    assert held["epochs_run"] >= 40


def test_the_old_patience_setting_names_its_replacement():
    m = get_method("onebp")
    with pytest.raises(UserError, match="'patience' was replaced: use patience_epochs"):
        resolve_config(m.name, m.params, m.defaults, "x", {"patience": 5})
