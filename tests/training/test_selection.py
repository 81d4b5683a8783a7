"""The trainer's small pieces on their own: selection/early stopping, checkpoints, the run record."""

from __future__ import annotations

import math

import pytest
import torch

from onebp.config import resolve_config
from onebp.errors import UserError
from onebp.training.checkpoint import Checkpointer, model_weights
from onebp.training.run_record import run_record
from onebp.training.selection import TrainState


def cfg(**overrides):
    return resolve_config("onebp", None, {}, "tiny", {"dim": 4, **overrides})


class Tiny(torch.nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.full((3,), value))


def test_selection_keeps_best_copy_and_counts_bad_evaluations():
    st, model = TrainState(), Tiny(1.0)
    weights = lambda: model_weights(model)  # noqa: E731
    assert st.record_valid(1, {"ndcg@20": 0.2}, "ndcg@20", weights)
    with torch.no_grad():
        model.w.fill_(2.0)  # the kept copy must not follow the live model
    assert not st.record_valid(2, {"ndcg@20": 0.2}, "ndcg@20", weights)  # a tie is no gain
    assert not st.record_valid(3, {"ndcg@20": 0.1}, "ndcg@20", weights)
    assert (st.best_epoch, st.best_value, st.bad_evals) == (1, 0.2, 2)
    assert torch.equal(st.best_model["w"], torch.ones(3))
    # Patience in epochs since the best (epoch 1): at epoch 3 two epochs have passed.
    assert st.should_stop("clean", 3, patience_epochs=2) and not st.should_stop("clean", 3, patience_epochs=3)
    assert not st.should_stop("clean", 3, patience_epochs=2, min_epochs=4)  # never before min_epochs
    assert st.should_stop("clean", 4, patience_epochs=2, min_epochs=4)
    assert not st.should_stop("paper", 3, patience_epochs=1)  # protocol paper trains every epoch
    assert st.record_valid(4, {"ndcg@20": 0.3}, "ndcg@20", weights) and st.bad_evals == 0
    st.epoch = 9
    assert st.selected_epoch == 4


def test_best_on_test_is_per_metric_and_selected_epoch_without_validation_is_the_last():
    st = TrainState(epoch=5)
    st.record_test(1, {"recall@20": 0.3, "ndcg@20": 0.5})
    st.record_test(2, {"recall@20": 0.4, "ndcg@20": 0.4})
    assert st.best_on_test == {"recall@20": 0.4, "ndcg@20": 0.5}
    assert st.best_on_test_epoch == {"recall@20": 2, "ndcg@20": 1}
    assert st.selected_epoch == 5 and st.best_model is None


def test_checkpoint_round_trip_restores_model_rng_and_state(tmp_path):
    c = cfg()
    model, gen = Tiny(3.0), torch.Generator().manual_seed(7)
    st = TrainState(epoch=4, best_value=0.5, best_epoch=2, curve=[{"epoch": 1, "loss": 1.0}])
    Checkpointer(tmp_path, c).save(model, gen, st)
    expected_draw = torch.rand(2, generator=gen)

    model2, gen2 = Tiny(0.0), torch.Generator().manual_seed(99)
    restored = Checkpointer(tmp_path, c).resume(model2, gen2)
    assert restored == st
    assert torch.equal(model2.w, model.w)
    assert torch.equal(torch.rand(2, generator=gen2), expected_draw)


def test_checkpoint_refuses_other_result_settings_but_not_thread_count(tmp_path):
    Checkpointer(tmp_path, cfg()).save(Tiny(1.0), torch.Generator(), TrainState(epoch=1))
    assert Checkpointer(tmp_path, cfg(threads=3)).resume(Tiny(0.0), torch.Generator()).epoch == 1
    with pytest.raises(UserError, match=r"checkpoint.pt: checkpoint was written with different settings \(lr\)"):
        Checkpointer(tmp_path, cfg(lr=0.5)).resume(Tiny(0.0), torch.Generator())


def test_resume_sweeps_a_killed_write_and_no_run_dir_is_a_no_op(tmp_path):
    stale = tmp_path / ".checkpoint.pt.123.tmp"
    stale.write_bytes(b"half a checkpoint")
    assert Checkpointer(tmp_path, cfg()).resume(Tiny(0.0), torch.Generator()) is None
    assert not stale.exists()
    none = Checkpointer(None, cfg())
    none.save(Tiny(0.0), torch.Generator(), TrainState())
    assert none.resume(Tiny(0.0), torch.Generator()) is None


def test_run_record_times_to_the_selected_epoch_and_labels_best_on_test():
    st = TrainState(epoch=3, best_epoch=2, best_model={}, best_valid={"ndcg@20": 0.3})
    st.curve = [{"epoch": e, "seconds_train": 1.0, "seconds_eval": 0.5} for e in (1, 2, 3)]
    st.best_on_test, st.best_on_test_epoch = {"recall@20": 0.4}, {"recall@20": 3}
    rec = run_record(cfg(protocol="paper"), st, {"recall@20": 0.35}, 0.1, (100.0, None), "cpu")
    assert rec["selected_epoch"] == 2 and rec["selection"] == "best validation ndcg@20"
    assert rec["timing"]["seconds_to_selected"] == 3.0
    assert rec["timing"]["epoch_seconds_median"] == 1.0 and rec["timing"]["train_seconds_total"] == 3.0
    assert rec["best_on_test"] == {"recall@20": 0.4} and "chosen on the test set" in rec["best_on_test_note"]
    clean = run_record(cfg(), TrainState(epoch=4), {"recall@20": 0.3}, 0.2, (1.0, None), "cpu")
    assert clean["selection"] == "last epoch (no validation part)" and "best_on_test" not in clean
    assert clean["timing"]["epoch_seconds_median"] is None and math.isclose(
        clean["timing"]["eval_seconds_median"], 0.2)
