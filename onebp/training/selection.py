"""What survives a restart, and how the reported epoch is chosen (early stopping, best-on-test).

``TrainState`` is the whole mutable state of a run apart from the model and the RNG: the trainer
updates it through ``record_valid``/``record_test`` and asks ``should_stop``; the checkpoint stores
it as a plain dict (``resume_dict``), the best model's weights in a file of their own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrainState:
    """Everything that changes during training and must survive a restart."""

    epoch: int = 0  # epochs completed
    curve: list[dict[str, Any]] = field(default_factory=list)
    best_value: float = -math.inf
    best_epoch: int = 0
    best_model: dict[str, Any] | None = None
    best_valid: dict[str, float] = field(default_factory=dict)
    bad_evals: int = 0
    best_on_test: dict[str, float] = field(default_factory=dict)
    best_on_test_epoch: dict[str, int] = field(default_factory=dict)
    stopped_early: bool = False

    def resume_dict(self) -> dict[str, Any]:
        """What the resume checkpoint stores: everything but the best model's weights, which have
        their own file (``onebp.training.checkpoint``)."""
        return {k: v for k, v in self.__dict__.items() if k != "best_model"}

    def record_valid(self, epoch: int, metrics: dict[str, float], select_metric: str,
                     model_state: Callable[[], dict[str, Any]]) -> bool:
        """Validation at ``epoch``; keeps the weights ``model_state()`` returns (a copy, e.g.
        ``onebp.training.checkpoint.model_weights``: encoder weights on the host, no optimizer state) when
        ``select_metric`` improves."""
        value = metrics[select_metric]
        if value > self.best_value:
            self.best_value, self.best_epoch, self.best_valid = value, epoch, metrics
            self.best_model = model_state()
            self.bad_evals = 0
            return True
        self.bad_evals += 1
        return False

    def record_test(self, epoch: int, metrics: dict[str, float]) -> None:
        """Protocol paper: the best test value per metric over all epochs (chosen on test)."""
        for k, v in metrics.items():
            if v > self.best_on_test.get(k, -math.inf):
                self.best_on_test[k], self.best_on_test_epoch[k] = v, epoch

    def should_stop(self, protocol: str, epoch: int, patience_epochs: int, min_epochs: int = 0) -> bool:
        """Early stopping (protocol clean only) at an evaluation after ``epoch`` epochs: stop once
        ``patience_epochs`` epochs have passed since the best validation value, never before
        ``min_epochs``. Counted in epochs, not evaluations, so the window is the same whatever
        ``eval_every`` is, and the same for every method."""
        if protocol != "clean" or epoch < min_epochs:
            return False
        return epoch - self.best_epoch >= patience_epochs

    @property
    def selected_epoch(self) -> int:
        """The epoch whose model is tested: best validation, else the last one trained."""
        return self.best_epoch if self.best_model is not None else self.epoch
