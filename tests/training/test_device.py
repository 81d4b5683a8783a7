"""The training device and the GPU-slot contract: a job that holds a slot never trains on the CPU by accident."""

from __future__ import annotations

import pytest

from onebp.training.device import held_gpu_slot


def test_held_slot_is_reported() -> None:
    assert held_gpu_slot({"ONEBP_GPU_SLOT": "1"}) == "1"
    assert held_gpu_slot({"ONEBP_GPU_SLOT": "cpu"}) is None
    assert held_gpu_slot({}) is None


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_job_with_a_gpu_slot_refuses_the_cpu(monkeypatch) -> None:
    from onebp.errors import UserError
    from onebp.training.device import select_device

    monkeypatch.setenv("ONEBP_GPU_SLOT", "0")
    with pytest.raises(UserError, match="holds GPU slot '0'.*refusing to run on the CPU"):
        select_device("auto")
    assert select_device("cpu").type == "cpu"  # an explicit device=cpu is the user's choice
    monkeypatch.setenv("ONEBP_GPU_SLOT", "cpu")  # gpu-run --slots 0, or no GPU on the machine
    assert select_device("auto").type == "cpu"


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_fake_gpus_may_train_on_the_cpu(monkeypatch) -> None:
    from onebp.training.device import select_device

    monkeypatch.setenv("ONEBP_GPU_SLOT", "0")
    monkeypatch.setenv("ONEBP_FAKE_GPUS", "1")  # tests of the lock mechanics (the smoke workflow)
    assert select_device("auto").type == "cpu"
