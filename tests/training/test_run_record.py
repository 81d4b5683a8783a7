"""The run record (metrics.json): timing to the selected epoch, best-on-test labelled."""

from __future__ import annotations

import math

from onebp.config import resolve_config
from onebp.training.run_record import run_record
from onebp.training.selection import TrainState


def cfg(**overrides):
    return resolve_config("onebp", None, {}, "tiny", {"dim": 4, **overrides})



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
