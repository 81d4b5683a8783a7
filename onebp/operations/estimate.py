"""``onebp estimate``: what the configured study costs on this device, before it runs.

It reads the workflow's config (``config.yaml`` plus ``--configfile`` presets, merged as Snakemake
merges them, validated and defaulted by the workflow's schema) and builds the same plan as the
Snakefile (``workflow/onebp_plan.py``): every train job, every sweep point and every tuning trial.
Then, per (dataset, method), it times on the current device a few epochs (after a warm-up) and one
full evaluation at the method's main setting — a one-shot method (EASE, MostPop) is fitted once —
and multiplies:

* a run: ``epochs`` × s/epoch + (``epochs`` / ``eval_every`` + 1) × s/evaluation. Every run is
  counted to its last epoch: an upper bound, since early stopping can only shorten clean runs;
* a sweep point: the same, its epoch time scaled by dim × (1 + negatives) and its evaluation by dim
  relative to the main setting (measured at the main setting only);
* a tuning trial: the tuning budget's ``max_epochs`` and ``eval_every``.

It prints device-hours per dataset and in total, and the wall time on ``--gpus`` devices (device-
hours / GPUs, never less than the longest single job). ``--remaining`` prices what is left of a study
that has started (in ``--workdir``): a run or trial whose directory holds ``metrics.json`` is finished
and skipped; an interrupted one is counted from the last epoch its ``curve.csv`` records (it resumes
from its checkpoint, at most ``checkpoint_minutes`` behind that) to its cap; and a (dataset, method)
with finished jobs is priced at their own median pace (``observed_timings``), not timed again. A
dataset without a prepared split here is scaled from a measured one (epoch time by train
interactions, evaluation by users × items, from the dataset catalog's statistics), labelled as such. EASE whose |I|×|I| matrices do not fit the memory
its jobs are configured with is refused with the error ``onebp train`` would give, before anything
is allocated; if it fits its jobs but not this machine, its time is extrapolated from a small
inverse and product timed here (labelled).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from onebp.errors import UserError


@dataclass
class Timing:
    epoch_s: float  # one epoch (0 for one-shot methods)
    eval_s: float  # one full evaluation
    fit_s: float = 0.0  # one-shot fit
    dim: int = 0
    negatives: int = 0
    source: str = "measured"
    n_train: int = 0
    n_users: int = 0
    n_items: int = 0
    observed: int = 0  # > 0: the median pace of this many of the study's finished jobs (observed_timings)


@dataclass
class Cost:
    jobs: int = 0
    epochs: int = 0
    seconds: float = 0.0
    longest: float = 0.0
    notes: set[str] = field(default_factory=set)
    finished: int = 0  # jobs skipped by --remaining: finished already
    finished_epochs: int = 0  # the epochs those of them that train by epochs ran …
    finished_caps: int = 0  # … of their caps

    def add(self, seconds: float, epochs: int) -> None:
        self.jobs += 1
        self.epochs += epochs
        self.seconds += seconds
        self.longest = max(self.longest, seconds)


# -- the config, as the Snakefile sees it ---------------------------------------------------------------
def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Snakemake's --configfile merge: dicts merge recursively, everything else replaces."""
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _read_yaml(path: Path, what: str) -> dict[str, Any]:
    """A YAML mapping (an empty file is an empty one), or a one-line error naming ``what``."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{what}: cannot read ({getattr(exc, 'strerror', None) or 'not text'})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise UserError(f"{what}: not YAML" + (f" (line {mark.line + 1})" if mark else "")) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{what}: not a mapping of config keys (a YAML {type(data).__name__})")
    return data


def load_config(workflow_dir: Path, configfiles: list[str], config_json: str | None = None) -> dict[str, Any]:
    from snakemake.utils import validate

    if config_json:
        try:
            # "-": from standard input (the workflow's estimate rule pipes the config it was built from)
            config = json.loads(sys.stdin.read() if config_json == "-" else Path(config_json).read_text())
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"--config-json {config_json}: cannot read ({getattr(exc, 'strerror', None) or 'not text'})"
                            ) from None
        except json.JSONDecodeError as exc:
            raise UserError(f"--config-json {config_json}: not JSON (line {exc.lineno})") from None
        if not isinstance(config, dict):
            raise UserError(f"--config-json {config_json}: not a JSON object")
    else:
        path = workflow_dir / "config.yaml"
        if not path.exists():
            raise UserError(f"{path}: missing (run from the repository, or pass --workflow-dir)")
        config = _read_yaml(path, str(path))
        for f in configfiles:
            config = _merge(config, _read_yaml(Path(f), f"--configfile {f}"))
    schema = workflow_dir / "workflow" / "schemas" / "config.schema.yaml"
    if not schema.is_file():
        raise UserError(f"{schema}: missing (--workflow-dir {workflow_dir} is not the repository root)")
    try:
        validate(config, str(schema))
    except Exception as exc:  # snakemake's WorkflowError: a config that the Snakefile would refuse
        raise UserError(f"config: {' '.join(str(exc).split())[:300]}") from None
    return config


def build_plan(workflow_dir: Path, config: dict[str, Any]) -> Any:
    sys.path.insert(0, str(workflow_dir / "workflow"))
    try:
        import onebp_plan
    finally:
        sys.path.pop(0)
    try:
        return onebp_plan.build(config)
    except onebp_plan.ConfigError as exc:
        raise UserError(f"config error: {exc}") from None


# -- timing -------------------------------------------------------------------------------------------
def time_method(split: Any, method_name: str, overrides: dict[str, Any], device: str, threads: int,
                epochs: int, warmup: int, memory_mb: float | None, max_negatives: int | None = None) -> Timing:
    """Time ``warmup + epochs`` epochs (median of the timed ones) and one evaluation on ``split``."""
    from onebp.config import resolve_config
    from onebp.methods.one_shot import check_ease_fits
    from onebp.methods.registry import get_method
    from onebp.training.trainer import Trainer

    m = get_method(method_name)
    settings = {**overrides, "device": device, "threads": threads, "epochs": max(epochs + warmup, 1)}
    cfg = resolve_config(m.name, m.params, m.defaults, str(overrides.get("dataset", split.name)), settings)
    source = "measured"
    if max_negatives is not None and cfg.n_negatives > max_negatives:
        # An epoch's negatives are drawn up front: 2000 per row on Gowalla is ~12 GB of ids, more than
        # a small machine holds. Timed with fewer, scaled by (1 + negatives) in run_seconds.
        source = f"measured at {max_negatives} negatives, scaled to {cfg.n_negatives}"
        settings["n_negatives"] = max_negatives
        cfg = resolve_config(m.name, m.params, m.defaults, str(overrides.get("dataset", split.name)), settings)
    if method_name == "ease" and memory_mb is not None:  # refused as its jobs would be
        check_ease_fits(split.n_items, int(memory_mb * 2**20), f"its jobs' configured memory (mem_mb {memory_mb:g})")
    trainer = Trainer(m, cfg, split, run_dir=None, log=lambda msg: None, progress=False)
    part = "valid" if split.has_valid else "test"
    t = Timing(0.0, 0.0, dim=cfg.dim, negatives=cfg.n_negatives, n_train=len(split.part("train")),
               n_users=split.n_users, n_items=split.n_items, source=source)
    if getattr(trainer.model, "iterative", True):
        seconds = []
        for i in range(warmup + epochs):
            row = trainer.run_epoch()
            trainer.state.epoch = row["epoch"]
            if i >= warmup:
                seconds.append(row["seconds_train"])
        t.epoch_s = statistics.median(seconds)
    else:
        start = time.perf_counter()
        trainer.model.fit()
        t.fit_s = time.perf_counter() - start
    if warmup:
        trainer.evaluate(part)  # warm-up (prepare_scoring, allocator)
    start = time.perf_counter()
    trainer.evaluate(part)
    t.eval_s = time.perf_counter() - start
    return t


def extrapolate_ease(n_users: int, n_items: int) -> Timing:
    """EASE that does not fit this machine: an n³ inverse and a |U|×|I|² product, from small ones
    timed here."""
    import torch

    n = 1024
    a = torch.rand(n, n, dtype=torch.float64) + n * torch.eye(n, dtype=torch.float64)
    start = time.perf_counter()
    torch.linalg.inv(a)
    inv_s = time.perf_counter() - start
    b = torch.rand(n, n)
    start = time.perf_counter()
    b @ b
    mm_s = time.perf_counter() - start
    fit = inv_s * (n_items / n) ** 3 * 2  # the inverse, and XᵀX about as much again
    evaluate = mm_s * (n_users / n) * (n_items / n) ** 2
    return Timing(0.0, evaluate, fit_s=fit, source="extrapolated (does not fit this machine's memory)",
                  n_users=n_users, n_items=n_items)


def scaled(t: Timing, n_train: int, n_users: int, n_items: int, source: str) -> Timing:
    epoch = t.epoch_s * n_train / max(t.n_train, 1)
    evaluate = t.eval_s * (n_users * n_items) / max(t.n_users * t.n_items, 1)
    fit = t.fit_s * (n_items / max(t.n_items, 1)) ** 3 if t.fit_s else 0.0
    return Timing(epoch, evaluate, fit, t.dim, t.negatives, f"scaled from {source}", n_train, n_users, n_items)


# -- the arithmetic -----------------------------------------------------------------------------------
def run_seconds(t: Timing, epochs: int, eval_every: int, dim: int | None = None,
                negatives: int | None = None) -> float:
    if t.epoch_s == 0.0:  # one-shot
        return t.fit_s + t.eval_s
    dim = dim or t.dim or 1
    negatives = t.negatives if negatives is None else negatives
    work = (dim * (1 + negatives)) / max((t.dim or dim) * (1 + t.negatives), 1)
    evals = math.ceil(epochs / max(eval_every, 1)) + 1  # + the final test
    return epochs * t.epoch_s * work + evals * t.eval_s * dim / max(t.dim or dim, 1)


def run_progress(run_dir: Path) -> tuple[bool, int]:
    """Whether the run or trial in ``run_dir`` has finished (its ``metrics.json`` exists), and its epoch:
    the epochs it trained if finished, else the last epoch its ``curve.csv`` records (0 when it has not
    started). ``onebp status`` reads the same files (``onebp.operations.status.run_status``)."""
    from onebp.operations.status import run_status

    if not run_dir.is_dir():
        return False, 0
    row = run_status(run_dir)
    if row["state"] == "damaged":
        raise UserError(f"{run_dir}: {row['error']} (--remaining cannot tell how far this run got; `onebp status "
                        f"{run_dir.parent}` lists it)")
    return row["state"] == "finished", int(row["epoch"])


def _jobs(plan: Any) -> list[tuple[str, str, str]]:
    """(dataset, method, directory) of every run, sweep point and tuning trial of ``plan``."""
    jobs = [(r.dataset, r.method, r.run_dir) for r in plan.runs]
    if plan.tuning is not None:
        for (ds, m), tuning in plan.tuning.methods.items():
            jobs += [(ds, m, f"{plan.tuning.directory(ds, m)}/trials/{trial}") for trial, _ in tuning.trials]
    return jobs


def observed_timings(plan: Any, done_root: Path) -> dict[tuple[str, str], Timing]:
    """Per (dataset, method) that trains by epochs: the median, over the study's own finished runs and
    trials at the main setting's dim and negatives, of each one's recent seconds per epoch and its
    seconds per evaluation (``curve.csv``, as ``onebp status`` reads it). They ran on the study's
    device under the study's own load (jobs side by side), so they price what is left of it more
    truly than epochs timed now beside it. One-shot methods and pairs with no finished job are left
    to ``measure``."""
    from onebp.operations.status import run_status

    def main_setting(ds: str, m: str) -> dict[str, Any]:
        main = next((r.setting for r in plan.runs if r.dataset == ds and r.method == m), None)
        return plan.resolved(ds, m, main) if main else {}

    seen: dict[tuple[str, str], list[tuple[float, float | None]]] = {}
    for ds, m, run_dir in _jobs(plan):
        res = main_setting(ds, m)
        path = done_root / run_dir
        if not (path / "metrics.json").exists():
            continue
        row = run_status(path)
        if row["state"] != "finished" or not row["seconds_per_epoch"]:  # one-shot: no epochs
            continue
        if (row["dim"], row["n_negatives"]) != (res.get("dim", row["dim"]), res.get("n_negatives", row["n_negatives"])):
            continue  # a sweep point at another size: not the main setting's pace
        seen.setdefault((ds, m), []).append((row["seconds_per_epoch"], row["seconds_per_eval"]))
    timings = {}
    for (ds, m), rows in seen.items():
        res = main_setting(ds, m)
        evals = [e for _, e in rows if e is not None]
        timings[(ds, m)] = Timing(statistics.median(s for s, _ in rows), statistics.median(evals) if evals else 0.0,
                                  dim=int(res.get("dim") or 0), negatives=int(res.get("n_negatives") or 0),
                                  source=f"the study's {len(rows)} finished jobs", observed=len(rows))
    return timings


def study_costs(plan: Any, timings: dict[tuple[str, str], Timing], done_root: Path | None = None,
                per_method: dict[tuple[str, str], Cost] | None = None) -> dict[str, Cost]:
    """Seconds per dataset on one device: every run, sweep point and tuning trial of ``plan``; with
    ``done_root`` (a study's working directory) only what is left of them (``run_progress``).
    ``per_method``, when given, is filled with the same per (dataset, method)."""
    costs: dict[str, Cost] = {}

    def add(ds: str, m: str, run_dir: str, t: Timing, epochs: int, eval_every: int, res: dict[str, Any]) -> None:
        finished, done = run_progress(done_root / run_dir) if done_root is not None else (False, 0)
        left = max(epochs - done, 0) if t.epoch_s else 0
        seconds = run_seconds(t, left, eval_every, res.get("dim"), res.get("n_negatives"))
        for cost in [costs.setdefault(ds, Cost())] + ([per_method.setdefault((ds, m), Cost())]
                                                     if per_method is not None else []):
            if not finished:
                cost.add(seconds, left)
                continue
            cost.finished += 1
            if t.epoch_s:  # what early stopping left of the caps so far
                cost.finished_epochs += min(done, epochs)
                cost.finished_caps += epochs

    for r in plan.runs:
        res = plan.resolved(r.dataset, r.method, r.setting)
        t = timings[(r.dataset, r.method)]
        add(r.dataset, r.method, r.run_dir, t, int(res.get("epochs", 0)), int(res.get("eval_every", 1)), res)
        if t.source != "measured" and not t.observed:
            costs[r.dataset].notes.add(f"{r.method} on {r.dataset}: {t.source}")
    if plan.tuning is not None:
        b = plan.tuning.budget
        for (ds, m), tuning in plan.tuning.methods.items():
            t = timings[(ds, m)]
            main = next((r.setting for r in plan.runs if r.dataset == ds and r.method == m), None)
            res = plan.resolved(ds, m, main) if main else {}
            for trial, _ in tuning.trials:  # priced at the main setting's dim and negatives
                add(ds, m, f"{plan.tuning.directory(ds, m)}/trials/{trial}", t, b.max_epochs, b.eval_every, res)
    return costs


def _ease_fits_here(n_items: int, device: str, mem_mb: float | None) -> bool:
    """Whether EASE can be fitted on this machine to time it (its jobs' own limit is checked, and
    refused, separately)."""
    import torch

    from onebp.methods.one_shot import check_ease_fits, ease_memory_bytes, memory_budget_bytes

    if mem_mb is not None:
        check_ease_fits(n_items, int(mem_mb * 2**20), f"its jobs' configured memory (mem_mb {mem_mb:g})")
    budget, _ = memory_budget_bytes(torch.device(device))
    return ease_memory_bytes(n_items) <= budget


def _catalog_sizes(dataset: str) -> tuple[int, int, int] | None:
    from onebp.data.catalog import CATALOG

    ds = CATALOG.get(dataset)
    e = ds.expected if ds is not None else None
    if e is None or not (e.n_users and e.n_items and e.n_interactions):
        return None
    n_train = e.n_train if getattr(e, "n_train", None) else int(0.8 * e.n_interactions)
    return int(n_train * 0.9), e.n_users, e.n_items  # the clean split carves 10 % of train as validation


def _cache_key(ds: str, m: str, device: str, path: Path, overrides: dict[str, Any], threads: int) -> str:
    import hashlib

    blob = json.dumps({"overrides": overrides, "threads": threads, "split": str(path.resolve())},
                      sort_keys=True, default=str)
    return f"{ds}/{m}/{device}/{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def read_cache(cache: Path | None) -> dict[str, dict[str, Any]]:
    """The timings of an earlier estimate (``--cache``): checked before anything is timed, so a
    damaged file is refused at once instead of after minutes of timing."""
    if cache is None or not (cache.exists() or cache.is_symlink()):
        return {}
    what = f"--cache {cache}"
    try:
        data = json.loads(cache.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{what}: cannot read ({getattr(exc, 'strerror', None) or 'not text'})") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{what}: not JSON (line {exc.lineno}); delete it to time everything again") from None
    fields = set(Timing.__dataclass_fields__)
    if not isinstance(data, dict):
        raise UserError(f"{what}: not a JSON object of timings; delete it to time everything again")
    for key, entry in data.items():
        if not (isinstance(entry, dict) and set(entry) <= fields and {"epoch_s", "eval_s"} <= set(entry)
                and all(isinstance(entry[f], (int, float)) and not isinstance(entry[f], bool)
                        and math.isfinite(entry[f]) and entry[f] >= 0
                        for f in fields & set(entry) if f != "source")):
            raise UserError(f"{what}: entry {key!r} is not a timing; delete it to time everything again")
    return data


def measure(plan: Any, config: dict[str, Any], workdir: Path, data: dict[str, str], device: str,
            epochs: int, warmup: int, log: Any, cache: Path | None = None,
            max_negatives: int | None = None,
            known: dict[tuple[str, str], Timing] | None = None) -> dict[tuple[str, str], Timing]:
    """Time every (dataset, method) of the plan not in ``known`` (``observed_timings``, taken as
    they are); ``cache``: a JSON file of earlier timings (same dataset, method, device, settings and
    split) reused and extended, so an interrupted estimate picks up where it stopped."""
    from onebp.atomic import atomic_write_json
    from onebp.data.split_format import load_split

    cached = read_cache(cache)

    pairs = list(dict.fromkeys((r.dataset, r.method) for r in plan.runs))
    if plan.tuning is not None:
        pairs += [p for p in plan.tuning.methods if p not in pairs]
    timings: dict[tuple[str, str], Timing] = {}
    missing: list[tuple[str, str]] = []
    for ds, m in pairs:
        if known and (ds, m) in known:
            timings[(ds, m)] = known[(ds, m)]
            log(f"{m} on {ds}: {known[(ds, m)].source} ({known[(ds, m)].epoch_s:.3f} s/epoch)")
            continue
        protocol = "clean" if (ds, "clean") in plan.splits else next(p for d, p in plan.splits if d == ds)
        path = Path(data[ds]) if ds in data else workdir / plan.split_dir(ds, protocol)
        if not path.is_dir():
            missing.append((ds, m))
            continue
        split = load_split(path)
        main = next(r.setting for r in plan.runs if r.dataset == ds and r.method == m) if any(
            r.dataset == ds and r.method == m for r in plan.runs) else None
        overrides = dict(plan.settings[(ds, m, main)]) if main else {}
        overrides["dataset"] = ds
        threads = int(plan.job_resource(ds, m, "threads", 1))
        mem = plan.job_resource(ds, m, "mem_mb", None)
        key = _cache_key(ds, m, device, path, overrides, threads)
        if key in cached:
            timings[(ds, m)] = Timing(**cached[key])
            log(f"{m} on {ds}: from {cache}")
            continue
        log(f"timing {m} on {ds} ({path}) ...")
        if m == "ease" and not _ease_fits_here(split.n_items, device, mem):
            log(f"  {m} on {ds} fits its jobs' memory but not this machine's; extrapolating")
            timings[(ds, m)] = extrapolate_ease(split.n_users, split.n_items)
        else:
            try:
                timings[(ds, m)] = time_method(split, m, overrides, device, threads, epochs, warmup, mem,
                                               max_negatives)
            except (RuntimeError, MemoryError) as exc:  # e.g. an epoch's negatives beyond this machine
                raise UserError(f"{m} on {ds} cannot be timed on this machine ({type(exc).__name__}: "
                                f"{str(exc)[:200]}); leave it out with --datasets, or estimate on a bigger "
                                "machine") from None
        if cache is not None:
            cached[key] = timings[(ds, m)].__dict__
            atomic_write_json(cache, cached)
        log(f"  {timings[(ds, m)].epoch_s:.3f} s/epoch, {timings[(ds, m)].eval_s:.3f} s/evaluation"
            + (f", fit {timings[(ds, m)].fit_s:.2f} s" if timings[(ds, m)].fit_s else ""))
    for ds, m in missing:
        sizes = _catalog_sizes(ds)
        measured = [(d, t) for (d, mm), t in timings.items() if mm == m and t.source.startswith("measured")]
        # the measured dataset closest in size (train interactions, on a log scale)
        ref = min(measured, key=lambda dt: abs(math.log(max(dt[1].n_train, 1) / sizes[0]))) if (
            measured and sizes) else None
        if sizes is None or ref is None:
            raise UserError(f"no prepared split for dataset {ds!r} ({workdir / plan.split_dir(ds, 'clean')}) and "
                            f"nothing measured to scale {m!r} from: prepare it (snakemake --cores 1 "
                            f"{plan.split_dir(ds, 'clean')}) or pass --data {ds}=DIR")
        if m == "ease":
            mem = plan.job_resource(ds, m, "mem_mb", None)
            if mem is not None:
                from onebp.methods.one_shot import check_ease_fits

                check_ease_fits(sizes[2], int(mem * 2**20), f"its jobs' configured memory (mem_mb {mem:g})")
        timings[(ds, m)] = scaled(ref[1], *sizes, source=f"{ref[0]} by catalog size")
    return timings


def render(costs: dict[str, Cost], gpus: int, device: str, timings: dict[tuple[str, str], Timing],
           remaining_in: Path | None = None, per_method: dict[tuple[str, str], Cost] | None = None) -> str:
    from tabulate import tabulate

    rows = [[ds, m, t.source, f"{t.epoch_s:.3g}" if t.epoch_s else "", f"{t.eval_s:.3g}",
             f"{t.fit_s:.3g}" if t.fit_s else ""] for (ds, m), t in timings.items()]
    out = [f"Measured on {device}:", "", tabulate(rows, ["dataset", "method", "timing", "s/epoch", "s/eval", "s/fit"],
                                                  tablefmt="github"), ""]
    total = sum(c.seconds for c in costs.values())
    longest = max((c.longest for c in costs.values()), default=0.0)
    rows = [[ds, c.jobs, c.epochs, f"{c.seconds / 3600:.3g}", f"{c.longest / 3600:.3g}"] for ds, c in costs.items()]
    rows.append(["total", sum(c.jobs for c in costs.values()), sum(c.epochs for c in costs.values()),
                 f"{total / 3600:.3g}", f"{longest / 3600:.3g}"])
    headers = ["dataset", "jobs", "epochs", "device-hours", "longest job (h)"]
    title = "Device-hours (every run to its last epoch: an upper bound under early stopping):"
    if remaining_in is not None:
        finished = [c.finished for c in costs.values()]
        for row, n in zip(rows, [*finished, sum(finished)], strict=True):
            row.insert(1, n)
        headers = ["dataset", "finished", "jobs left", "epochs left", "device-hours left", "longest job (h)"]
        title = (f"Left of the study in {remaining_in} (finished jobs skipped; interrupted ones from their last "
                 "recorded epoch; every run to its last epoch: an upper bound under early stopping):")
    out += [title, "", tabulate(rows, headers, tablefmt="github"), ""]
    if per_method:
        by = sorted(per_method.items(), key=lambda kv: (kv[0][0], -kv[1].seconds, kv[0][1]))
        rows = [[ds, m, *([c.finished] if remaining_in is not None else []), c.jobs, c.epochs,
                 f"{c.seconds / 3600:.3g}"] for (ds, m), c in by]
        out += ["By method (runs, sweep points and tuning trials together; the dearest first):", "",
                tabulate(rows, ["dataset", "method", *headers[1:-1]], tablefmt="github"), ""]
    wall = max(total / max(gpus, 1), longest)
    out.append(f"Wall time on {gpus} device(s) like this one: about {wall / 3600:.3g} h "
               f"({total / 3600:.3g} device-hours / {gpus}, at least the longest job).")
    notes = sorted({n for c in costs.values() for n in c.notes})
    if remaining_in is not None and (caps := sum(c.finished_caps for c in costs.values())):
        ran = sum(c.finished_epochs for c in costs.values())
        share = ran / caps
        out.append(f"The finished jobs that train by epochs ran {ran} of their caps' {caps} epochs "
                   f"({100 * share:.0f} %): where the jobs left stop as early, about that share of the above: "
                   f"{share * total / 3600:.3g} device-hours, {max(share * total / max(gpus, 1), longest) / 3600:.3g} h "
                   f"on {gpus} device(s).")
    if notes:
        out += ["", "Timings not measured as configured: " + "; ".join(notes) + "."]
    return "\n".join(out)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("estimate", help="time a few epochs per dataset x method here and price the configured study")
    p.add_argument("--configfile", action="append", default=[], help="preset merged on top of config.yaml (repeatable)")
    p.add_argument("--config-json", help="an already merged config (what the Snakefile holds), instead of the YAML "
                                         "files; - reads it from standard input")
    p.add_argument("--workflow-dir", type=Path, default=Path("."), help="repository root (config.yaml, workflow/)")
    p.add_argument("--workdir", type=Path, default=None, help="where data/splits is (default: the workflow dir)")
    p.add_argument("--data", action="append", default=[], metavar="DATASET=DIR", help="a prepared split to time on")
    p.add_argument("--datasets", default=None, help="only these datasets (comma-separated)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--epochs", type=int, default=2, help="timed epochs per dataset x method")
    p.add_argument("--warmup", type=int, default=1, help="untimed epochs first")
    p.add_argument("--gpus", type=int, default=1, help="devices for the wall-time line")
    p.add_argument("--json", action="store_true", help="a JSON summary instead of tables")
    p.add_argument("--max-negatives", type=int, default=None,
                   help="time methods with more negatives per row at this many and scale by (1 + negatives) "
                        "(an epoch's negatives are drawn up front: SimpleX's 2000 on Gowalla need ~12 GB)")
    p.add_argument("--cache", type=Path, default=None,
                   help="JSON file of timings to reuse and extend (an interrupted estimate resumes)")
    p.add_argument("--remaining", action="store_true",
                   help="price only what is left of a started study in --workdir: finished runs and trials "
                        "skipped, interrupted ones from their last recorded epoch")
    p.add_argument("--by-method", action="store_true",
                   help="also a table per dataset x method (what to stage first; the JSON always has it)")
    p.set_defaults(func=cmd_estimate)


def check_arguments(args: argparse.Namespace) -> dict[str, str]:
    """Every number and path checked before anything is read, timed or written; returns ``--data``
    as dataset → directory."""
    for flag, value, least in (("--epochs", args.epochs, 1), ("--warmup", args.warmup, 0), ("--gpus", args.gpus, 1),
                               ("--max-negatives", args.max_negatives, 1)):
        if value is not None and value < least:
            # --epochs 0 would time nothing (a median of no epochs)
            raise UserError(f"{flag} {value}: must be at least {least}")
    data = {}
    for item in args.data:
        ds, sep, path = item.partition("=")
        if not sep or not ds or not path:
            raise UserError(f"--data expects DATASET=DIR, got {item!r}")
        if not Path(path).is_dir():  # else it was silently priced by catalog size instead
            raise UserError(f"--data {item}: {path} is not a directory")
        data[ds] = path
    if args.datasets is not None and not [d for d in args.datasets.split(",") if d.strip()]:
        raise UserError(f"--datasets {args.datasets!r}: names no dataset (comma-separated names)")
    if args.cache is not None and args.cache.is_dir():
        raise UserError(f"--cache {args.cache}: a directory, not a JSON file")
    read_cache(args.cache)
    return data


def cmd_estimate(args: argparse.Namespace) -> int:
    from onebp.methods.registry import discover
    from onebp.training.device import select_device

    data = check_arguments(args)
    discover()
    config = load_config(args.workflow_dir, args.configfile, args.config_json)
    if args.datasets:
        config["datasets"] = [d.strip() for d in args.datasets.split(",") if d.strip()]
        config["sweeps"] = [{**s, "datasets": [d for d in (s.get("datasets") or config["datasets"])
                                                if d in config["datasets"]]} for s in config["sweeps"]]
        config["sweeps"] = [s for s in config["sweeps"] if s["datasets"]]
    plan = build_plan(args.workflow_dir, config)
    try:
        device = str(select_device(args.device))
    except RuntimeError as exc:  # torch's own refusal of a malformed device string
        raise UserError(f"--device {args.device!r}: {str(exc).splitlines()[0][:200]}") from None

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    workdir = args.workdir or args.workflow_dir
    if args.remaining and not (workdir / "results").is_dir():  # else everything would be priced as left
        raise UserError(f"--remaining: {workdir / 'results'} does not exist (nothing of a study has run in "
                        f"{workdir}; pass the study's working directory as --workdir)")
    observed = observed_timings(plan, workdir) if args.remaining else {}
    timings = measure(plan, config, workdir, data, device, args.epochs, args.warmup, log,
                      args.cache, args.max_negatives, known=observed)
    per_method: dict[tuple[str, str], Cost] = {}
    costs = study_costs(plan, timings, workdir if args.remaining else None, per_method)
    if args.json:
        print(json.dumps({"device": device, "gpus": args.gpus, "remaining": args.remaining,
                          "datasets": {ds: {"jobs": c.jobs, "epochs": c.epochs, "device_hours": c.seconds / 3600,
                                            "longest_job_hours": c.longest / 3600, "notes": sorted(c.notes),
                                            "finished": c.finished, "finished_epochs": c.finished_epochs,
                                            "finished_caps": c.finished_caps}
                                       for ds, c in costs.items()},
                          "device_hours": sum(c.seconds for c in costs.values()) / 3600,
                          "methods": {f"{ds}/{m}": {"jobs": c.jobs, "epochs": c.epochs, "device_hours": c.seconds / 3600,
                                                    "finished": c.finished} for (ds, m), c in per_method.items()},
                          "timings": {f"{ds}/{m}": t.__dict__ for (ds, m), t in timings.items()}}))
    else:
        print(render(costs, args.gpus, device, timings, workdir if args.remaining else None,
                     per_method if args.by_method else None))
    return 0
