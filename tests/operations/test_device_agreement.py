"""The CPU-vs-CUDA agreement check, run on the CPU: ``compare(devices=("cpu", "cpu"))`` trains both
sides on the CPU, so the verdict logic (NaN anywhere means disagreement, refused inputs) is tested
without a GPU. The check on a real GPU is tests/training/test_cuda.py."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from onebp.data.split_format import load_split
from onebp.errors import UserError
from onebp.operations import device_agreement as da

CPU_TWICE = ("cpu", "cpu")
SMALL = {"batch_size": 64, "dim": 16, "threads": 1}


@pytest.fixture(scope="module")
def split(tiny_split_dir):
    return load_split(tiny_split_dir)


def test_both_sides_on_the_cpu_agree_exactly(split):
    out = da.compare(split, "onebp", epochs=2, devices=CPU_TWICE, **SMALL)
    assert out["agree"] is True and out["disagreements"] == []
    assert out["loss_cpu"] == out["loss_cuda"] and out["loss_max_rel_diff"] == 0.0
    assert out["metric_abs_diff"] and all(k.endswith("@20") for k in out["metric_abs_diff"])
    assert out["device"] == "cpu"


def poison(state: Any) -> None:
    """Fill every float tensor of a (nested) state dict with NaN, in place."""
    for value in state.values():
        if isinstance(value, dict):
            poison(value)
        elif isinstance(value, torch.Tensor) and value.is_floating_point():
            value.fill_(math.nan)


@pytest.mark.parametrize("tables", ["finite", "poisoned"])
def test_a_nan_loss_in_a_later_epoch_is_a_disagreement(split, monkeypatch, tables):
    # The built-in max() drops a NaN that is not first, so a second side whose loss turned NaN
    # after epoch 1 used to pass. "finite": only the epoch-2 loss reading is NaN (the tables stay
    # finite, so the metrics agree); "poisoned": the tables go NaN before epoch 2, a real divergence.
    real_epoch, calls = da._epoch, []

    def epoch(trainer: Any, *args: Any) -> float:
        calls.append(trainer)
        checked_epoch_2 = len(calls) == 4  # calls alternate reference, checked
        if checked_epoch_2 and tables == "poisoned":
            poison(trainer.model.state_dict())
        loss = real_epoch(trainer, *args)
        return math.nan if checked_epoch_2 else loss

    monkeypatch.setattr(da, "_epoch", epoch)
    out = da.compare(split, "onebp", epochs=3, devices=CPU_TWICE, **SMALL)
    assert math.isfinite(out["loss_cuda"][0]) and math.isnan(out["loss_cuda"][1])
    assert out["agree"] is False
    assert math.isnan(out["loss_max_rel_diff"])
    assert "epoch 2: training loss on cpu is nan" in out["disagreements"], out
    if tables == "poisoned":  # NaN tables give NaN scores, which the evaluation refuses: reported
        assert any("evaluation on cpu failed" in p for p in out["disagreements"]), out
        assert out["metric_max_abs_diff"] is None


def test_nan_metrics_are_a_disagreement(split, monkeypatch):
    # All metrics @20 but the first NaN on the checked side: max() over the differences, which
    # keeps a NaN only when it comes first, used to see only the finite one.
    from onebp.training.trainer import Trainer

    real_evaluate, calls = Trainer.evaluate, []

    def evaluate(self: Trainer, part: str) -> Any:
        result = real_evaluate(self, part)
        calls.append(part)
        if len(calls) == 2:
            for key in [k for k in result.mean if k.endswith("@20")][1:]:
                result.mean[key] = math.nan
        return result

    monkeypatch.setattr(Trainer, "evaluate", evaluate)
    out = da.compare(split, "onebp", epochs=1, devices=CPU_TWICE, **SMALL)
    assert out["agree"] is False
    assert math.isnan(out["metric_max_abs_diff"])
    nan_reasons = [p for p in out["disagreements"] if p.endswith("@20: nan on cpu")]
    assert len(nan_reasons) == len(out["metric_abs_diff"]) - 1 > 0, out


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"epochs": 0}, "at least 1 epoch"),
    ({"epochs": -2}, "at least 1 epoch"),
    ({"epochs": 1, "ks": "5,10", "select_metric": "ndcg@10"}, "has no 20"),
    ({"epochs": 1, "device": "cpu"}, "cannot be set"),
])
def test_refused_inputs_are_one_line_user_errors(split, kwargs, message):
    # These used to end in "max() arg is an empty sequence" (after training, for ks) or train on
    # a device the caller did not ask for.
    with pytest.raises(UserError, match=message) as info:
        da.compare(split, "onebp", devices=CPU_TWICE, **{**SMALL, **kwargs})
    assert "\n" not in str(info.value)


def test_main_honours_set_threads_and_reports_user_errors_in_one_line(tiny_split_dir, monkeypatch, capsys):
    seen: dict[str, Any] = {}

    def fake_compare(split: Any, method: str, epochs: int, **settings: Any) -> dict[str, Any]:
        seen.update(settings)
        return {"agree": True}

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # past the no-CUDA exit
    monkeypatch.setattr(da, "compare", fake_compare)
    # used to raise TypeError: compare() got multiple values for keyword argument 'threads'
    assert da.main(["--data", str(tiny_split_dir), "--set", "threads=2"]) == 0
    assert seen["threads"] == "2"
    assert da.main(["--data", str(tiny_split_dir)]) == 0 and seen["threads"] == 1

    monkeypatch.undo()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    capsys.readouterr()
    assert da.main(["--data", str(tiny_split_dir), "--epochs", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("onebp: error: device agreement: epochs=0") and err.count("\n") == 1
