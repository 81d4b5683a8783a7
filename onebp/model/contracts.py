"""The contracts, in code: what the trainer needs from a method's model, and what a model needs from
its update strategy and loss (``typing.Protocol``s; the one home of these contracts).

* ``TrainableModel`` — what every built model gives the trainer: ``iterative`` (the explicit kind the
  trainer dispatches on), ``prepare_scoring()`` (a hook, no-op by default) then ``score_users(users)``,
  ``state_dict()``/``load_state_dict()`` (everything resume needs) and ``scoring_weights()`` /
  ``load_scoring_weights()`` (what scoring needs: the best model's copy; the whole state by default).
  A method's ``build(ctx)`` returns one of its two kinds (``BuiltModel``):

  * ``IterativeModel`` (``iterative = True``): trained by batches. Per epoch the trainer calls
    ``sampler.sample(users, generator)``, ``begin_epoch(users, pos, neg)``, then ``step(b)`` (the
    detached batch loss) and ``after_step(b)`` for every batch b, then ``end_epoch(train)``;
    ``after_step`` and ``end_epoch`` are hooks, no-ops by default. ``TwoTowerModel`` is one.
  * ``OneShotModel`` (``iterative = False``): fitted once by ``fit()`` (no epochs, no sampler);
    ``onebp.methods.one_shot`` (MostPop, EASE).

* ``UpdateStrategy`` — how one batch changes the two towers (it owns the loss and the optimizer):
  the same epoch calls as an iterative model, which forwards them; ``Backprop``, ``OneBP`` (and its
  ablations, ``aggregation``) in ``onebp.model.updates``, ``MomentumTarget`` in ``onebp.model.momentum``.
* ``Loss`` — ``loss(user_vecs (B,d), pos_vecs (B,d), neg_vecs (B,N,d) | None)`` → a scalar; two
  optional capabilities, each its own protocol, that the strategies dispatch on with ``isinstance``:
  ``ScoresLoss`` (``value_and_grad``: the fused path) and ``AllItemsLoss`` (``with_all_items``).
* ``NegativeSampler`` — ``sample(users, generator)`` → negatives (B, N), or None for in-batch ones.

The concrete classes subclass their protocol explicitly, so they inherit its no-op hooks and a
missing required method fails at construction (``abstractmethod``); a model written without
subclassing conforms structurally, and ``contract_gaps`` names what it lacks (the conformance battery,
``onebp.methods.conformance``, checks every registered method's model with it). Only the protocols
something dispatches on are ``runtime_checkable``.

Imports nothing at run time beyond the standard library (torch only for type checking).
"""

from __future__ import annotations

import inspect
from abc import abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch

    from onebp.model.interactions import UserItems


class NegativeSampler(Protocol):
    """Draws an epoch's negatives for its shuffled users, from the trainer's sampling stream."""

    def sample(self, users: torch.Tensor, generator: torch.Generator) -> torch.Tensor | None:
        """(len(users), N) negative item ids; None: in-batch negatives (the other rows' positives)."""
        ...


class TrainableModel(Protocol):
    """What the trainer needs from every method's model (module docstring); see its two kinds."""

    #: the kind: True for ``IterativeModel``, False for ``OneShotModel`` (the trainer dispatches on it)
    iterative: ClassVar[bool]

    def prepare_scoring(self) -> None:
        """Called before every evaluation pass (e.g. compute all user and item vectors once)."""
        return None  # a hook: no-op by default (an explicit body, so type checkers see no abstract)

    @abstractmethod
    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        """(len(users), n_items) floating scores on the training device (after ``prepare_scoring``)."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (weights and optimizer state)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""

    def scoring_weights(self) -> dict[str, Any]:
        """What scoring needs (the selected best model's copy): by default the whole state."""
        return self.state_dict()

    def load_scoring_weights(self, weights: dict[str, Any]) -> None:
        """Restore what ``scoring_weights`` returned."""
        self.load_state_dict(weights)


class EpochSteps(Protocol):
    """One epoch, as the trainer drives it: ``begin_epoch``, then per batch ``step`` and
    ``after_step`` (timed apart), then ``end_epoch``. An iterative model offers it, and forwards it
    to its update strategy (``TwoTowerModel``), so both protocols share these four members."""

    @abstractmethod
    def begin_epoch(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor | None) -> None:
        """The epoch's shuffled rows (row 0 of each batch at ``b·batch_size``) and their negatives."""

    @abstractmethod
    def step(self, b: int) -> torch.Tensor:
        """Forward, backward and optimizer step on batch b; returns the batch loss, detached."""

    def after_step(self, b: int) -> None:
        """Work after batch b's optimizer step (OneBP's per-batch aggregation, BUIR's momentum target)."""
        return None  # a hook: no-op by default

    def end_epoch(self, train: UserItems) -> None:
        """Work once per epoch, after its last batch (OneBP's per-epoch ablations)."""
        return None  # a hook: no-op by default


@runtime_checkable
class IterativeModel(TrainableModel, EpochSteps, Protocol):
    """A model trained by batches, epoch after epoch (``TwoTowerModel``)."""

    iterative: ClassVar[Literal[True]] = True
    sampler: NegativeSampler


@runtime_checkable
class OneShotModel(TrainableModel, Protocol):
    """A model fitted once, without epochs (MostPop, EASE)."""

    iterative: ClassVar[Literal[False]] = False

    @abstractmethod
    def fit(self) -> None:
        """Fit on the train interactions given at build time."""


#: what a method's ``build(ctx)`` returns; ``model.iterative`` tells the two apart (for type checkers too)
BuiltModel = IterativeModel | OneShotModel


class UpdateStrategy(EpochSteps, Protocol):
    """How one batch changes the towers; owns the loss and the optimizer. Driven like an iterative
    model's epoch (``EpochSteps``): the model forwards its epoch to it."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """What resume needs besides the encoder (the optimizer state)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""


class Loss(Protocol):
    """A batch loss from the user, positive and negative vectors."""

    def __call__(self, user_vecs: torch.Tensor, pos_vecs: torch.Tensor,
                 neg_vecs: torch.Tensor | None) -> torch.Tensor:
        """A scalar; ``neg_vecs is None`` means in-batch negatives (the other rows' positives)."""
        ...


@runtime_checkable
class ScoresLoss(Loss, Protocol):
    """A loss that is a function of the dot-product scores only: the strategies' fused path writes
    the embedding gradients by hand from ``value_and_grad`` (no autograd graph)."""

    def value_and_grad(self, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and dLoss/dscores for scores (1+N, B): row 0 the positives, row j the j-th negatives."""
        ...


@runtime_checkable
class AllItemsLoss(Loss, Protocol):
    """A loss that can also be computed from all item vectors and the negatives' ids (cheaper than
    gathering (B, N, d) negative vectors when the catalogue is small and N large)."""

    def with_all_items(self, user_vecs: torch.Tensor, pos_vecs: torch.Tensor, item_vecs: torch.Tensor,
                       neg_ids: torch.Tensor) -> torch.Tensor:
        """The same loss from item vectors (|I|, d) and negative ids (B, N)."""
        ...


def protocol_members(protocol: type) -> list[str]:
    """The members a protocol declares (attributes, methods, ``__call__``), its base protocols' included."""
    names: set[str] = set()
    for cls in protocol.__mro__:
        # the protocol classes of the chain: not typing's own Protocol, not a concrete class
        if cls is Protocol or not cls.__dict__.get("_is_protocol", False):
            continue
        names.update(vars(cls).get("__annotations__", {}))
        names.update(n for n, v in vars(cls).items()
                     if inspect.isfunction(v) and (not n.startswith("_") or n == "__call__"))
    return sorted(names)


def contract_gaps(obj: object, protocol: type) -> list[str]:
    """What ``obj`` lacks to satisfy ``protocol``, one readable line each (empty: it conforms): a
    missing member, or a method that cannot be called with the protocol's positional arguments.
    ``isinstance`` on a runtime-checkable protocol only says no, and checks no arguments."""
    gaps = []
    present = set(dir(obj))
    for name in protocol_members(protocol):
        if name not in present:
            gaps.append(f"no {name}")
            continue
        declared = inspect.getattr_static(protocol, name, None)  # None: declared by annotation only
        if not inspect.isfunction(declared):
            continue  # an attribute: being there is the contract
        have = getattr(obj, name)
        if not callable(have):
            gaps.append(f"{name} is not callable")
            continue
        n_args = len(inspect.signature(declared).parameters) - 1  # less self
        try:
            inspect.signature(have).bind(*([None] * n_args))
        except TypeError:
            gaps.append(f"{name} cannot be called with {n_args} argument(s) as {protocol.__name__} says")
        except ValueError:
            pass  # no signature to read (a builtin): trust it
    return gaps
