"""The tuning part of the workflow's plan: which trials run, where, and what the main runs read.

With ``tuning.n_trials > 0`` every method that declares a search space gets, per dataset, the same
budget (``onebp.tuning.trials.TuningBudget``): ``n_trials`` trials drawn up front (trial 0 = the settings the
main runs would otherwise use), each a tuning-trial run of ``onebp train`` on the dataset's *clean*
split (train → select on validation; never the test part), in
``results/tuning/<dataset>/<method>/trials/trial<NN>-<hash>/``. ``onebp tune summarize`` then writes
``results/tuning/<dataset>/<method>/{trials.csv,best.json}``, and every main run (and sweep point) of
that method reads ``best.json`` with ``onebp train --params-file``. Everything is known when the
workflow is parsed (the draws depend on the space, sampler and seed only), so the DAG is static and
trials run in parallel.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from typing import Any

from onebp.report.layout import setting_hash

#: keys a trial sets itself (the budget) and the train rule sets (dataset, threads)
TRIAL_RULE_KEYS = ("dataset", "threads", "device")


@dataclass(frozen=True)
class MethodTuning:
    keys: tuple[str, ...]  # the search space's settings
    trials: tuple[tuple[str, dict[str, Any]], ...]  # (trial id, --set overrides)
    signature: str  # hash of budget, split and trials: part of the main runs' setting id


@dataclass
class TuningPlan:
    budget: Any  # onebp.tuning.trials.TuningBudget
    methods: dict[tuple[str, str], MethodTuning] = field(default_factory=dict)
    untuned: set[tuple[str, str]] = field(default_factory=set)  # methods with nothing to tune

    def add(self, dataset: str, method: str, base: dict[str, Any], clean_split: str) -> MethodTuning | None:
        """Draw the trials of ``method`` on ``dataset`` (``base``: the workflow's overrides for its
        runs); None when the method has nothing to tune."""
        from onebp.methods.registry import get_method
        from onebp.tuning.trials import method_trials, trial_overrides

        m = get_method(method)
        drawn = method_trials(m, dataset, {k: _cli(v) for k, v in base.items()}, self.budget)
        if not drawn:
            self.untuned.add((dataset, method))
            return None
        trials = []
        for i, params in enumerate(drawn):
            overrides = {**base, **trial_overrides(self.budget, params)}
            trials.append((f"trial{i:02d}-{setting_hash({**overrides, '_split': clean_split})}", overrides))
        signature = setting_hash({"budget": self.budget.to_dict(), "split": clean_split,
                                  "trials": [t for t, _ in trials]})
        tuning = MethodTuning(tuple(m.search_space), tuple(trials), signature)
        self.methods[(dataset, method)] = tuning
        return tuning

    def keys_of(self, dataset: str, method: str) -> tuple[str, ...]:
        tuning = self.methods.get((dataset, method))
        return tuning.keys if tuning else ()

    # -- pieces of the rules ------------------------------------------------------------------------
    def directory(self, dataset: str, method: str) -> str:
        return f"results/tuning/{dataset}/{method}"

    def trial_dirs(self, dataset: str, method: str) -> list[str]:
        base = self.directory(dataset, method)
        return [f"{base}/trials/{tid}" for tid, _ in self.methods[(dataset, method)].trials]

    def trial_set_args(self, dataset: str, method: str, trial: str) -> str:
        overrides = dict(self.methods[(dataset, method)].trials)[trial]
        return shlex.join(a for k, v in overrides.items() for a in ("--set", f"{k}={_cli(v)}"))

    def keys(self, dataset: str, method: str) -> str:
        return ",".join(self.methods[(dataset, method)].keys)

    def budget_json(self) -> str:
        return json.dumps(self.budget.to_dict(), sort_keys=True, separators=(",", ":"))

    def best_files(self, dataset: str, method: str) -> list[str]:
        """The main runs' extra input: ``best.json`` of a tuned method, nothing otherwise."""
        if (dataset, method) not in self.methods:
            return []
        return [f"{self.directory(dataset, method)}/best.json"]

    def trial_files(self, name: str) -> list[str]:
        """``name`` (e.g. ``curve.csv``) of every trial of every tuned method."""
        return [f"{d}/{name}" for ds, m in self.methods for d in self.trial_dirs(ds, m)]

    def best_outputs(self) -> list[str]:
        return [f"{self.directory(ds, m)}/best.json" for ds, m in self.methods]

    def trials_outputs(self) -> list[str]:
        return [f"{self.directory(ds, m)}/trials.csv" for ds, m in self.methods]

    def all_outputs(self) -> list[str]:
        return [f"{self.directory(ds, m)}/{name}" for ds, m in self.methods for name in ("trials.csv", "best.json")]


def from_config(config: dict[str, Any]) -> TuningPlan | None:
    """The plan's tuning part; None when ``tuning.n_trials`` is 0 (or the block is absent)."""
    from onebp.tuning.trials import TuningBudget

    block = dict(config.get("tuning") or {})
    if not block.get("n_trials"):
        return None
    return TuningPlan(TuningBudget.from_mapping(block))


def _cli(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return ",".join(map(str, v))
    if isinstance(v, bool):
        return str(v).lower()
    return str(v)
