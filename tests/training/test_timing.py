"""Timing on the CPU: the opt-in per-phase profile (``profile_phases``) is nested inside the epoch's
wall time and changes no number the run records; off, it records nothing. (The CUDA side, where the
phases synchronise the GPU, is in test_cuda.py.)"""

from __future__ import annotations

import pytest
import torch

from onebp.config import resolve_config
from onebp.data.split_format import load_split
from onebp.methods.registry import get_method
from onebp.training.timing import PhaseTimer
from onebp.training.trainer import Trainer

PHASES = ("seconds_sample", "seconds_prepare", "seconds_step", "seconds_aggregate")


@pytest.fixture(scope="module")
def split(tiny_split_dir):
    return load_split(tiny_split_dir)


def trainer(split, method: str, **overrides) -> Trainer:
    m = get_method(method)
    settings = {"epochs": 4, "eval_every": 2, "batch_size": 64, "dim": 8, "threads": 1, **overrides}
    cfg = resolve_config(m.name, m.params, m.defaults, split.name, settings)
    return Trainer(m, cfg, split, log=lambda msg: None)


@pytest.mark.parametrize("method", ["onebp", "twobp"])
def test_phases_lie_inside_the_epoch(split, method):
    t = trainer(split, method, profile_phases=True)
    for _ in range(3):
        row = t.run_epoch()
        t.state.epoch = row["epoch"]
        # the phases are disjoint intervals between the epoch timer's start and stop
        assert all(row[p] >= 0 for p in PHASES), row
        assert sum(row[p] for p in PHASES) <= row["seconds_train"] + 1e-6, row
        assert row["seconds_step"] > 0, row


@pytest.mark.parametrize("method", ["onebp", "twobp"])
def test_profiling_changes_no_recorded_number_and_is_absent_when_off(split, method):
    plain, profiled = trainer(split, method).fit(), trainer(split, method, profile_phases=True).fit()
    assert plain["valid"] == profiled["valid"] and plain["test"] == profiled["test"]
    t = trainer(split, method)
    row = t.run_epoch()
    assert not any(p in row for p in PHASES), row


def test_disabled_phase_timer_is_free_and_records_nothing():
    timer = PhaseTimer(torch.device("cpu"), enabled=False)
    assert timer.now() == 0.0 and timer.add("step", 0.0) == 0.0
    assert timer.totals == {}
    on = PhaseTimer(torch.device("cpu"))
    t0 = on.now()
    on.add("step", t0)
    on.add("step", on.now())
    assert set(on.totals) == {"step"} and on.totals["step"] >= 0
