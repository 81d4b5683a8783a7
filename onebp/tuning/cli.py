"""``onebp tune plan|summarize``: the trials a budget draws for a method, and the best of finished ones.

A trial itself is an ordinary ``onebp train`` run with ``--set tuning_trial=true`` and the budget's
settings (``onebp.tuning.trials.trial_overrides``); the workflow runs them (``workflow/rules/tune.smk``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from onebp.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    tune = sub.add_parser("tune", help="tuning: the trials a budget draws; best.json from finished trials")
    tsub = tune.add_subparsers(dest="tune_command", required=True)

    p = tsub.add_parser("plan", help="print the trials (one JSON object per line) of a method")
    p.add_argument("--method", required=True)
    p.add_argument("--dataset", required=True, help="picks the method's per-dataset defaults (trial 0)")
    p.add_argument("--n-trials", type=int, default=8)
    p.add_argument("--sampler", default="qmc")
    p.add_argument("--seed", type=int, default=0, help="the sampler's seed")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="settings the runs would get (they change trial 0)")
    p.add_argument("--baselines", action="append", default=[], metavar="DIR")
    p.set_defaults(func=_plan)

    p = tsub.add_parser("summarize", help="trials.csv and best.json from finished trial run directories")
    p.add_argument("trials", nargs="+",
                   help="trial run directories, or their metrics.json files (config.json read next to it), "
                        "in trial order (trial 0 first); all of one method, dataset and select_metric")
    p.add_argument("--method", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--keys", required=True, help="comma-separated tuned settings (the search space)")
    p.add_argument("--budget", default="{}", help="the budget as JSON (recorded in best.json)")
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=_summarize)


def _plan(args: argparse.Namespace) -> int:
    from onebp.config import parse_assignments
    from onebp.methods.registry import discover, get_method
    from onebp.tuning.trials import TuningBudget, method_trials

    discover(args.baselines)
    budget = TuningBudget(n_trials=args.n_trials, sampler=args.sampler, seed=args.seed)
    trials = method_trials(get_method(args.method), args.dataset, parse_assignments(args.set), budget)
    if not trials:
        raise UserError(f"method {args.method!r} declares no search space: nothing to tune")
    for i, params in enumerate(trials):
        print(json.dumps({"trial": i, **params}))
    return 0


def _summarize(args: argparse.Namespace) -> int:
    from onebp.tuning.trials import summarize

    try:
        budget = json.loads(args.budget)
    except json.JSONDecodeError as exc:
        raise UserError(f"--budget: not JSON ({exc})") from None
    if not isinstance(budget, dict):
        # best.json records it as a mapping; a list or number would fail there, after trials.csv
        raise UserError(f"--budget: expected a JSON object, got {type(budget).__name__} {args.budget!r}")
    keys = [k.strip() for k in args.keys.split(",") if k.strip()]
    if not keys:
        # a best.json with no params would silently give the runs the defaults
        raise UserError(f"--keys {args.keys!r}: names no setting (expected comma-separated setting names)")
    best = summarize(args.method, args.dataset, keys, [Path(t) for t in args.trials], Path(args.out_dir),
                     budget)  # refuses unknown keys and mixed trials before writing anything
    print(json.dumps({k: best[k] for k in ("method", "dataset", "trial", "params", "valid_value",
                                           "default_value")}))
    return 0
