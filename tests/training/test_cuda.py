"""CUDA-only checks (pytest marker ``cuda``; skipped without a device). benchmarks/gpu_check.sh runs
them with ``pytest -m cuda`` on a GPU machine."""

from __future__ import annotations

import pytest
import torch

from onebp.data.split_format import load_split

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.fixture(scope="module")
def split(tiny_split_dir):
    return load_split(tiny_split_dir)


def trainer(split, method="onebp", run_dir=None, **overrides):
    from onebp.config import resolve_config
    from onebp.methods.registry import get_method
    from onebp.training.trainer import Trainer

    m = get_method(method)
    settings = {"epochs": 6, "eval_every": 2, "batch_size": 64, "dim": 16, "device": "auto", **overrides}
    cfg = resolve_config(m.name, m.params, m.defaults, split.name, settings)
    return Trainer(m, cfg, split, run_dir=run_dir, log=lambda msg: None)


def test_device_carries_its_index_and_scores_stay_there(split):
    from onebp.methods.conformance import check_score_shape, same_device

    t = trainer(split)
    assert t.device.type == "cuda" and t.device.index is not None
    assert same_device(t.device, torch.device("cuda"))
    check_score_shape(t)


def test_epoch_timer_and_separate_memory_peaks(split, tmp_path):
    t = trainer(split, run_dir=tmp_path, checkpoint_minutes=0)
    record = t.fit()
    assert all(r["seconds_train"] > 0 for r in t.state.curve)
    assert "seconds_step" not in t.state.curve[0]  # no per-batch synchronisation unless profiling
    mem = record["memory"]
    assert mem["peak_gpu_mb"] > 0 and mem["peak_gpu_eval_mb"] > 0
    assert record["device"].startswith("cuda:")


def test_profiled_phases_sum_to_about_the_epoch(split):
    t = trainer(split, profile_phases=True)
    t.run_epoch()
    row = t.run_epoch()
    phases = sum(row[f"seconds_{p}"] for p in ("sample", "prepare", "step", "aggregate"))
    assert phases == pytest.approx(row["seconds_train"], rel=0.5)


@pytest.mark.parametrize("method", ["onebp", "twobp"])
def test_cpu_and_cuda_agree(split, method):
    from onebp.operations.device_agreement import compare

    out = compare(split, method, epochs=3, batch_size=64, dim=16, threads=1)
    assert out["agree"], out


def test_checkpoint_resume_on_cuda_and_refused_on_cpu(split, tmp_path):
    from onebp.errors import UserError

    t = trainer(split, run_dir=tmp_path, checkpoint_minutes=0)
    t.state.epoch = t.run_epoch()["epoch"]
    t.checkpoints.save(t.model, t.generator, t.state)
    again = trainer(split, run_dir=tmp_path, checkpoint_minutes=0)
    assert again.checkpoints.resume(again.model, again.generator).epoch == 1
    on_cpu = trainer(split, run_dir=tmp_path, checkpoint_minutes=0, device="cpu")
    with pytest.raises(UserError, match="written on 'cuda', this run is on 'cpu'"):
        on_cpu.checkpoints.resume(on_cpu.model, on_cpu.generator)
