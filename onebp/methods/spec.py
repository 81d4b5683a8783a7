"""``Method``: what a registered method is — a name, a ``build`` function and its settings.

Kept apart from the registry (which stores and discovers methods) so that the modules defining
methods and the registry never import each other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Method:
    """A named composition of encoder, sampler, loss and update strategy.

    ``build(ctx)`` returns the trainable model (``onebp.model.contracts``) for a ``BuildContext``;
    ``params`` is the dataclass of the method's own hyper-parameters (or None); ``defaults`` maps a
    dataset name (or ``"*"``) to setting overrides taken from the method's paper.
    ``test_overrides`` are settings under which the method learns within a few epochs on the
    conformance battery's tiny synthetic data (``onebp.methods.conformance``); never used for real runs.
    ``search_space`` maps the settings tuning may change (shared ones such as ``lr``, ``l2`` and the
    method's own params) to typed dimensions (``onebp.methods.search_space``); the defaults are trial 0.
    ``onebp_update``: the method updates users by OneBP's moving aggregation (``compose(..., "onebp")``);
    only then may its defaults or ``--set`` give the OneBP update's settings (``beta``, ``aggregation``,
    ``duplicate_users``; ``onebp.config``).
    """

    name: str
    build: Callable[[Any], Any]
    params: type | None = None
    defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    citation: str = ""
    summary: str = ""
    module: str = ""
    test_overrides: Mapping[str, Any] = field(default_factory=dict)
    search_space: Mapping[str, Any] = field(default_factory=dict)
    onebp_update: bool = False
