"""Search spaces: what tuning may change, declared by each method next to its defaults.

A search space maps a setting name (a shared ``TrainConfig`` field such as ``lr`` or one of the
method's own ``params``) to one of four small typed dimensions:

* ``LogUniform(low, high)`` — a positive float drawn uniformly in log space (learning rates, weights);
* ``Uniform(low, high)`` — a float drawn uniformly (β, margins);
* ``IntRange(low, high)`` — an integer in [low, high] (number of layers);
* ``Choice(options)`` — one of a few values (e.g. weight decay in {0, 1e-8, …, 1e-4}: 0 is a
  legitimate and common choice that no log scale can draw).

Bounds are inclusive. ``to_optuna`` turns a dimension into the Optuna distribution that draws it
(Optuna is imported only there: declaring a space costs nothing at import time). ``extremes`` gives
the corner values the conformance battery trains with (every method must stay finite there).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from onebp.errors import UserError


@dataclass(frozen=True)
class LogUniform:
    low: float
    high: float

    def check(self) -> None:
        if not 0 < self.low < self.high:
            raise ValueError(f"LogUniform needs 0 < low < high, got {self.low}, {self.high}")

    def contains(self, value: Any) -> bool:
        return _is_number(value) and self.low <= float(value) <= self.high

    def extremes(self) -> tuple[float, float]:
        return (self.low, self.high)

    def to_optuna(self) -> Any:
        from optuna.distributions import FloatDistribution

        return FloatDistribution(self.low, self.high, log=True)


@dataclass(frozen=True)
class Uniform:
    low: float
    high: float

    def check(self) -> None:
        if not self.low < self.high:
            raise ValueError(f"Uniform needs low < high, got {self.low}, {self.high}")

    def contains(self, value: Any) -> bool:
        return _is_number(value) and self.low <= float(value) <= self.high

    def extremes(self) -> tuple[float, float]:
        return (self.low, self.high)

    def to_optuna(self) -> Any:
        from optuna.distributions import FloatDistribution

        return FloatDistribution(self.low, self.high)


@dataclass(frozen=True)
class IntRange:
    low: int
    high: int

    def check(self) -> None:
        if not (isinstance(self.low, int) and isinstance(self.high, int) and self.low < self.high):
            raise ValueError(f"IntRange needs integers low < high, got {self.low!r}, {self.high!r}")

    def contains(self, value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and self.low <= value <= self.high

    def extremes(self) -> tuple[int, int]:
        return (self.low, self.high)

    def to_optuna(self) -> Any:
        from optuna.distributions import IntDistribution

        return IntDistribution(self.low, self.high)


@dataclass(frozen=True)
class Choice:
    options: tuple[Any, ...]

    def check(self) -> None:
        if len(self.options) < 2 or len(set(self.options)) != len(self.options):
            raise ValueError(f"Choice needs at least two distinct options, got {self.options!r}")
        if not all(isinstance(o, (bool, int, float, str)) for o in self.options):
            raise ValueError(f"Choice options must be numbers, strings or booleans: {self.options!r}")

    def contains(self, value: Any) -> bool:
        return any(_same(value, o) for o in self.options)

    def extremes(self) -> tuple[Any, Any]:
        if all(_is_number(o) for o in self.options):
            return (min(self.options), max(self.options))
        return (self.options[0], self.options[-1])

    def to_optuna(self) -> Any:
        from optuna.distributions import CategoricalDistribution

        return CategoricalDistribution(self.options)


Dimension = LogUniform | Uniform | IntRange | Choice
SearchSpace = Mapping[str, Dimension]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _same(a: Any, b: Any) -> bool:
    if _is_number(a) and _is_number(b):
        return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=0.0) or a == b
    return type(a) is type(b) and a == b


def check_space(method: str, space: SearchSpace, known: Mapping[str, Any]) -> None:
    """Raise ``UserError`` naming the method and key if ``space`` is malformed.

    ``known`` maps every setting the method accepts to its type (``float``, ``int``, ``bool``,
    ``str`` or a ``Literal``); a dimension must draw values of that type.
    """
    for key, dim in space.items():
        where = f"method {method!r}: search space key {key!r}"
        if key not in known:
            raise UserError(f"{where}: not a setting of the method; known: {', '.join(sorted(known))}")
        if not isinstance(dim, (LogUniform, Uniform, IntRange, Choice)):
            raise UserError(f"{where}: {dim!r} is not a LogUniform, Uniform, IntRange or Choice")
        try:
            dim.check()
        except ValueError as exc:
            raise UserError(f"{where}: {exc}") from None
        typ = known[key]
        if typ is float and isinstance(dim, IntRange):
            raise UserError(f"{where}: float setting with an IntRange")
        if typ is int and isinstance(dim, (LogUniform, Uniform)):
            raise UserError(f"{where}: integer setting with a float range (use IntRange)")
        if typ in (bool, str) and not isinstance(dim, Choice):
            raise UserError(f"{where}: {typ.__name__} setting needs a Choice")


# -- shared dimensions, used by the methods' own declarations -----------------------------------------
#: Adam learning rate: from below the slowest paper setting (OneBP on Yelp2018, 5e-5) to 1e-2.
LEARNING_RATE = LogUniform(3e-5, 1e-2)
#: Weight decay (Adam's L2): 0 or a power of ten, the usual grid (DirectAU's official one is
#: {0, 1e-8, 1e-6, 1e-4}); every method's paper value is one of these.
WEIGHT_DECAY = Choice((0.0, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3))
#: InfoNCE temperature τ (the OneBP paper uses 1).
TEMPERATURE = LogUniform(0.05, 2.0)
#: OneBP's moving-aggregation coefficient β (the paper: 0.99 on MovieLens, 0.999 on Gowalla/Yelp2018).
ONEBP_BETA = Uniform(0.9, 0.999)
