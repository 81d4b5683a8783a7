"""Hyper-parameter tuning with one budget for every method, drawn up front so the DAG is static.

* :class:`TuningBudget` — the ``tuning:`` block of the workflow config: number of trials, the trials'
  epoch budget (max epochs, evaluation interval, patience and minimum epochs, all in epochs), the
  Optuna sampler and its seed, and the training seed of the trials.
* :func:`draw_trials` — trial 0 is the method's own defaults (so tuning can only help it); trials
  1…n−1 are drawn by a seeded Optuna sampler through ``study.ask`` with no ``tell``: the draws depend
  only on the space, the sampler and its seed, never on results, so every trial is known when the
  workflow is planned and all of them can run in parallel.
* :func:`trial_overrides` — the ``onebp train --set`` values of one trial: its drawn settings plus the
  budget; a trial is a ``tuning_trial`` run (protocol clean: trains on train, selects on validation,
  and the trainer refuses to evaluate the test part).
* :func:`summarize` — reads the trials' run directories, picks the best validation value (ties: the
  lower trial number, so the defaults win ties) and writes ``trials.csv`` and ``best.json`` (strict
  JSON: a value that is not a number is ``null``).

What ``summarize`` refuses, before writing anything: a trial directory given twice; with a budget
that names ``n_trials``, any other number of trials (the workflow passes every trial of the budget —
one that diverged still writes its ``metrics.json`` and is counted as failed — so a missing one
means the wrong set was passed); and trials that cannot be ranked against one another
(:func:`check_comparable`: another method, dataset, select_metric, split, epoch budget, training
seed, or a protocol other than clean) or against the budget recorded with them. A trial that
finished (status ok) without a finite value of its select_metric is counted as failed, with the
reason, like a diverged one.
"""

from __future__ import annotations

import csv
import io
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from onebp.atomic import atomic_write
from onebp.errors import UserError
from onebp.methods.search_space import LogUniform, SearchSpace, Uniform

SAMPLERS = ("qmc", "random")


@dataclass(frozen=True)
class TuningBudget:
    """The same budget for every method (see module docstring)."""

    n_trials: int = 12
    max_epochs: int = 1000
    eval_every: int = 5
    patience_epochs: int = 300
    min_epochs: int = 0
    sampler: str = "qmc"  # qmc (scrambled Sobol) | random
    seed: int = 0  # the sampler's seed
    run_seed: int = 0  # the training seed of every trial

    def __post_init__(self) -> None:
        if self.n_trials < 1:
            raise UserError(f"tuning.n_trials={self.n_trials}: need at least 1 (trial 0 = the defaults)")
        if self.max_epochs < 1 or self.eval_every < 1 or self.patience_epochs < 1 or self.min_epochs < 0:
            raise UserError("tuning: max_epochs, eval_every and patience_epochs must be ≥ 1, min_epochs ≥ 0")
        if self.sampler not in SAMPLERS:
            raise UserError(f"tuning.sampler={self.sampler!r}: expected one of {', '.join(SAMPLERS)}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> TuningBudget:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise UserError(f"tuning: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**dict(values))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_sampler(name: str, seed: int) -> Any:
    import optuna

    if name == "qmc":
        # Scrambled Sobol: spreads a small number of trials evenly over the space.
        return optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=seed,
                                          warn_independent_sampling=False)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise UserError(f"tuning.sampler={name!r}: expected one of {', '.join(SAMPLERS)}")


def draw_trials(space: SearchSpace, defaults: Mapping[str, Any], n_trials: int, sampler: str = "qmc",
                seed: int = 0) -> list[dict[str, Any]]:
    """``n_trials`` settings over ``space``: trial 0 is ``defaults`` (restricted to the space's keys),
    the rest drawn by the seeded sampler. Deterministic in (space, defaults, n_trials, sampler, seed)."""
    import optuna

    missing = sorted(set(space) - set(defaults))
    if missing:
        raise UserError(f"draw_trials: no default for search space key(s) {', '.join(missing)}")
    first = {k: defaults[k] for k in space}
    if not space:
        return [first]
    distributions = {k: dim.to_optuna() for k, dim in space.items()}
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # QMCSampler's label
            study = optuna.create_study(direction="maximize", sampler=make_sampler(sampler, seed))
        # Enqueued: trial 0 is recorded in the study like any other, so QMC starts its sequence at
        # trial 1 (it infers the space from the pending trial 0). A default outside the space (a
        # user's override) is kept in our trial 0 but not given to Optuna, which would refuse it.
        study.enqueue_trial({k: v for k, v in first.items() if space[k].contains(v)})
        trials = [first]
        study.ask(distributions)  # trial 0: the enqueued defaults
        for _ in range(n_trials - 1):
            drawn = study.ask(distributions).params
            trials.append({k: _readable(space[k], v) for k, v in drawn.items()})
    finally:
        optuna.logging.set_verbosity(verbosity)
    return trials


def _readable(dim: Any, value: Any) -> Any:
    """A plain Python value; floats kept to 4 significant digits (inside the bounds), so commands,
    tables and run directories show 0.003563 rather than 0.0035625125384893953."""
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float) and isinstance(dim, (LogUniform, Uniform)):
        value = min(max(float(f"{value:.4g}"), dim.low), dim.high)
    return value


def trial_overrides(budget: TuningBudget, params: Mapping[str, Any]) -> dict[str, Any]:
    """``--set`` values of one trial: the drawn settings and the shared epoch budget."""
    return {
        **params,
        "epochs": budget.max_epochs,
        "eval_every": budget.eval_every,
        "patience_epochs": budget.patience_epochs,
        "min_epochs": budget.min_epochs,
        "protocol": "clean",
        "seed": budget.run_seed,
        "tuning_trial": True,
    }


# -- results ------------------------------------------------------------------------------------------
def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        # the decoder's own message shows raw bytes and no file; name the file instead
        raise UserError(f"{path}: not a UTF-8 text file (a trial run directory's {path.name})") from None


def trial_record(run_dir: Path, keys: Sequence[str], number: int) -> dict[str, Any]:
    """One trial's row: its number, tuned settings, status, selected epoch and validation metrics."""
    run_dir = Path(run_dir)
    try:
        config = _read_json(run_dir / "config.json")
        metrics = _read_json(run_dir / "metrics.json")
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{run_dir}: not a finished trial ({exc})") from None
    for name, value in (("config.json", config), ("metrics.json", metrics)):
        if not isinstance(value, dict):
            raise UserError(f"{run_dir / name}: not a JSON object (a trial run directory's {name})")
    if not isinstance(config.get("params", {}), dict) or not isinstance(metrics.get("valid") or {}, dict):
        raise UserError(f"{run_dir}: config.json 'params' or metrics.json 'valid' is not a JSON object")
    if not isinstance(config.get("select_metric"), str):
        raise UserError(f"{run_dir / 'config.json'}: no select_metric (not a trial run directory's config)")
    if not config.get("tuning_trial"):
        raise UserError(f"{run_dir}: config.json is not a tuning trial's (tuning_trial is not set)")
    if "test" in metrics:
        raise UserError(f"{run_dir}: a tuning trial with test metrics; refusing to use it")
    flat = {**config, **config.get("params", {})}
    unknown = [k for k in keys if k not in flat]
    if unknown:
        known = sorted(k for k, v in flat.items() if not isinstance(v, dict))
        raise UserError(f"--keys: unknown setting {unknown[0]!r} (not in {run_dir / 'config.json'}); "
                        f"known: {', '.join(known)}")
    row: dict[str, Any] = {"trial": number, **{k: flat.get(k) for k in keys}}
    # what every trial of one summary must share (checked in summarize)
    row["method"], row["dataset"] = config.get("method"), config.get("dataset")
    row["shared"] = {f: config.get(f) for f in SHARED_FIELDS}
    row["select_metric"] = metric = config["select_metric"]
    valid = metrics.get("valid") or {}
    row["status"], row["value"], row["reason"] = _outcome(metrics, valid, metric)
    row["selected_epoch"] = metrics.get("selected_epoch")
    row["epochs_run"] = metrics.get("epochs_run")
    row["stopped_early"] = metrics.get("stopped_early")
    row["train_seconds"] = (metrics.get("timing") or {}).get("train_seconds_total")
    row["valid"] = valid
    row["run_dir"] = str(run_dir)
    return row


def _outcome(metrics: Mapping[str, Any], valid: Mapping[str, Any], metric: str) -> tuple[str, float, str]:
    """(status, value, reason a trial failed or ""): a trial that finished without a finite value of
    its select_metric is failed too ("no_value"), not silently left out of the count."""
    status = metrics.get("status", "ok")
    if status != "ok":
        return str(status), math.nan, " ".join(str(metrics.get("error") or status).split())
    if metric not in valid:
        return "no_value", math.nan, f"no {metric} in metrics.json 'valid'"
    value = valid[metric]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "no_value", math.nan, f"{metric} is {value!r} in metrics.json 'valid'"
    return "ok", float(value), ""


def trial_dir(path: str | Path) -> Path:
    """A trial's run directory, given the directory or one of its files (``metrics.json``: what the
    workflow declares and passes, so a storage plugin's local copy is read, not a guessed path)."""
    path = Path(path)
    return path.parent if path.name in ("metrics.json", "config.json") else path


#: what every trial of one summary must share, from its config.json: a best over trials of other data,
#: validation metrics, epoch budgets or training seeds is meaningless. A key the summary tunes
#: (``--keys``) is exempt: it is what the trials vary.
SHARED_FIELDS = ("method", "dataset", "select_metric", "split_fingerprint", "epochs", "eval_every",
                 "patience_epochs", "min_epochs", "seed", "protocol")
#: budget key (``TuningBudget``) → the trial setting it fixes (``trial_overrides``)
BUDGET_FIELDS = {"max_epochs": "epochs", "eval_every": "eval_every", "patience_epochs": "patience_epochs",
                 "min_epochs": "min_epochs", "run_seed": "seed"}


def check_comparable(rows: Sequence[Mapping[str, Any]], tuned: Sequence[str] = (),
                     budget: Mapping[str, Any] | None = None) -> None:
    """Refuse trials that cannot be ranked against one another: one whose ``SHARED_FIELDS`` (those not
    in ``tuned``) differ from trial 0's, one of a recorded protocol other than clean (a trial selects
    on validation), or, given ``budget``, one whose epoch budget or seed is not the budget's."""
    first = rows[0]
    for r in rows:
        shared = r.get("shared") or {f: r.get(f) for f in SHARED_FIELDS}
        if shared.get("protocol") not in (None, "clean") and "protocol" not in tuned:
            raise UserError(f"{r['run_dir']}: a trial of protocol {shared['protocol']!r}; tuning trials are "
                            "protocol clean (they select on validation)")
        for key, field in BUDGET_FIELDS.items():
            want, have = (budget or {}).get(key), shared.get(field)
            if field not in tuned and want is not None and have is not None and want != have:
                raise UserError(f"{r['run_dir']}: trial has {field}={have!r} but --budget has "
                                f"{key}={want!r}; summarize trials of the budget they ran with")
        if r is first:
            continue
        base = first.get("shared") or {f: first.get(f) for f in SHARED_FIELDS}
        for field in SHARED_FIELDS:
            if field not in tuned and shared.get(field) != base.get(field):
                raise UserError(f"trials differ in {field}: {first['run_dir']} has {base.get(field)!r}, "
                                f"{r['run_dir']} has {shared.get(field)!r}; summarize the trials of one "
                                "method, dataset, split, select_metric, epoch budget and seed together")


def best_trial(rows: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The highest validation value; ties go to the lower trial number (trial 0 = the defaults)."""
    usable = [r for r in rows if isinstance(r["value"], float) and math.isfinite(r["value"])]
    if usable:
        return min(usable, key=lambda r: (-r["value"], r["trial"]))
    metric = rows[0].get("select_metric") if rows else None
    if rows and all(str(r.get("reason", "")).startswith(f"no {metric} in ") for r in rows):
        # not a divergence: the runs never evaluated the metric the trials are to be ranked by
        example = Path(rows[0]["run_dir"]) / "metrics.json"
        raise UserError(f"tuning: no trial records its select_metric {metric!r} in metrics.json 'valid' "
                        f"(e.g. {example}); summarize trials whose runs evaluated it")
    why = "; ".join(f"trial {r['trial']}: {r.get('reason') or r.get('status') or 'no value'}"
                    for r in rows[:3])
    more = f"; {len(rows) - 3} more" if len(rows) > 3 else ""
    raise UserError(f"tuning: no trial finished with a finite validation value ({why}{more})")


def _strict(value: Any) -> Any:
    """``value`` with every non-finite float as None: best.json is strict JSON (NaN is not JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def _distinct(trial_dirs: Sequence[Path]) -> list[Path]:
    """The trial directories, refusing one given twice (it would count as two trials)."""
    seen: dict[Path, int] = {}
    for i, d in enumerate(trial_dirs):
        key = d.resolve()
        if key in seen:
            raise UserError(f"{d}: the same trial directory given twice (trials {seen[key]} and {i}); "
                            "give each trial once")
        seen[key] = i
    return list(trial_dirs)


def summarize(method: str, dataset: str, space_keys: Sequence[str], trial_dirs: Sequence[Path],
              out_dir: Path, budget: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write ``out_dir/trials.csv`` and ``out_dir/best.json`` from finished trials; return best.json."""
    keys = list(space_keys)
    dirs = _distinct([trial_dir(d) for d in trial_dirs])
    n_planned = (budget or {}).get("n_trials")
    if isinstance(n_planned, int) and not isinstance(n_planned, bool) and n_planned != len(dirs):
        # the workflow passes every trial of the budget, a diverged one included (its metrics.json
        # records the divergence); fewer means a missing one, and best.json would claim a budget
        # the choice was not made over
        raise UserError(f"--budget n_trials={n_planned} but {len(dirs)} trial directories given; pass "
                        "every trial of the budget (a diverged one counts as failed) or leave n_trials out "
                        "of --budget")
    rows = [trial_record(d, keys, i) for i, d in enumerate(dirs)]
    check_comparable(rows, keys, budget)
    # best.json is filed under --method; trials of another method would give it foreign settings.
    # Only the method is checked: callers may label a dataset differently from the split's name.
    if method and isinstance(rows[0]["method"], str) and rows[0]["method"] != method:
        raise UserError(f"--method {method!r}: the trials are of method {rows[0]['method']!r} "
                        f"({rows[0]['run_dir']})")
    best = best_trial(rows)
    out_dir = Path(out_dir)
    buf = io.StringIO()
    fields = ["trial", *keys, "status", "select_metric", "value", "selected_epoch", "epochs_run",
              "stopped_early", "train_seconds", "run_dir", "reason"]
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in fields})
    failed = [{"trial": r["trial"], "status": r["status"], "reason": r["reason"]}
              for r in rows if r["status"] != "ok"]
    record = {
        "method": method,
        "dataset": dataset,
        "trial": best["trial"],
        "params": {k: best[k] for k in keys},
        "select_metric": best["select_metric"],
        "valid_value": best["value"],
        "valid": best["valid"],
        "selected_epoch": best["selected_epoch"],
        "default_value": rows[0]["value"],  # trial 0: the method's own defaults
        "n_trials": len(rows),
        "n_failed": len(failed),
        "failed": failed,
        "budget": dict(budget or {}),
        "run_dir": best["run_dir"],
        "note": "chosen on the validation part; no trial evaluated the test part",
    }
    record = _strict(record)
    text = json.dumps(record, indent=2, sort_keys=True, allow_nan=False) + "\n"  # before writing either file
    atomic_write(out_dir / "trials.csv", buf.getvalue())
    atomic_write(out_dir / "best.json", text)  # last: what the runs read
    return record


# -- per method ---------------------------------------------------------------------------------------
def method_trials(method: Any, dataset: str, overrides: Mapping[str, Any], budget: TuningBudget
                  ) -> list[dict[str, Any]]:
    """The trials of ``method`` on ``dataset``: trial 0 = its settings as a run would resolve them
    (its defaults for the dataset, then ``overrides`` — e.g. the workflow's params), restricted to
    its search space; then ``budget.n_trials − 1`` drawn ones. Empty space: no trials."""
    from onebp.config import resolve_config, setting_types
    from onebp.methods.search_space import check_space

    space = dict(method.search_space)
    if not space:
        return []
    check_space(method.name, space, setting_types(method.params, onebp_update=method.onebp_update))
    cfg = resolve_config(method.name, method.params, method.defaults, dataset, overrides,
                         onebp_update=method.onebp_update).to_dict()
    resolved = {**cfg.pop("params"), **cfg}
    return draw_trials(space, resolved, budget.n_trials, budget.sampler, budget.seed)
