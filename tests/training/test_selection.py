"""Selection on its own: the best copy kept, patience counted in epochs, best-on-test per metric."""

from __future__ import annotations

import torch

from onebp.training.checkpoint import model_weights
from onebp.training.selection import TrainState


class Tiny(torch.nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.full((3,), value))

    def scoring_weights(self) -> dict:  # what model_weights copies (onebp.model.contracts)
        return self.state_dict()


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
