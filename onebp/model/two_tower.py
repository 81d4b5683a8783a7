"""The trainable model the trainer drives, and what a method's ``build`` receives.

``TwoTowerModel`` composes the four modules — encoder, sampler, loss and update strategy (the
strategy owns the loss and the optimizer) — into an ``IterativeModel``; the contracts it meets (and
the one-shot kind of model) are written as protocols in ``onebp.model.contracts``.
``BuildContext`` is what every method's ``build(ctx)`` gets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from onebp.config import TrainConfig
from onebp.model.contracts import IterativeModel, NegativeSampler, UpdateStrategy
from onebp.model.encoders import GraphSpec
from onebp.model.interactions import UserItems


@dataclass
class BuildContext:
    """What a method's ``build`` gets: data sizes, train interactions, device, RNG, settings."""

    n_users: int
    n_items: int
    train_pairs: np.ndarray  # (n, 2) on the host
    train: UserItems  # on the device
    device: torch.device
    # On the device; use it for every random draw of initialisation. It is seeded from (dataset,
    # seed) only, so twins built the same way start from identical tables. Draws during training
    # come from the trainer's sampling stream (the generator passed to ``sampler.sample``).
    generator: torch.Generator
    config: TrainConfig

    @property
    def params(self) -> dict[str, Any]:
        return self.config.params

    @property
    def graph(self) -> GraphSpec:
        return GraphSpec(self.n_users, self.n_items, self.train_pairs)


class TwoTowerModel(IterativeModel):
    """Encoder + sampler + loss + update strategy (the strategy owns the loss and optimizer)."""

    def __init__(self, encoder: nn.Module, sampler: NegativeSampler, strategy: UpdateStrategy,
                 score: str = "dot") -> None:
        if score not in ("dot", "cosine"):
            raise ValueError(f"unknown score {score!r}: expected dot or cosine")
        self.encoder = encoder
        self.sampler = sampler
        self.strategy = strategy
        self.score = score  # "cosine": rank by the cosine of the vectors (SimpleX)

    def begin_epoch(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor | None) -> None:
        self.strategy.begin_epoch(users, pos, neg)

    def step(self, b: int) -> torch.Tensor:
        return self.strategy.step(b)

    def after_step(self, b: int) -> None:
        self.strategy.after_step(b)

    def end_epoch(self, train: UserItems) -> None:
        self.strategy.end_epoch(train)

    def prepare_scoring(self) -> None:
        """Compute the full item/user vectors once before an evaluation pass."""
        with torch.no_grad():
            self._users = self.encoder.all_user_vectors()
            self._items = self.encoder.all_item_vectors()
            if self.score == "cosine":
                self._users = nn.functional.normalize(self._users, dim=1)
                self._items = nn.functional.normalize(self._items, dim=1)

    @torch.no_grad()
    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        return self._users[users] @ self._items.T

    def state_dict(self) -> dict[str, Any]:
        return {"encoder": self.encoder.state_dict(), "strategy": self.strategy.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.encoder.load_state_dict(state["encoder"])
        self.strategy.load_state_dict(state["strategy"])

    def scoring_weights(self) -> dict[str, Any]:
        """The encoder's tensors only: scoring needs no optimizer state."""
        return self.encoder.state_dict()

    def load_scoring_weights(self, weights: dict[str, Any]) -> None:
        self.encoder.load_state_dict(weights)
