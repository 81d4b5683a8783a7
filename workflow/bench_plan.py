"""The dedicated benchmark's part of the plan (workflow/rules/bench.smk): which datasets, which split,
and each method's main setting as `onebp bench-suite` arguments. Pure Python, like onebp_plan."""

from __future__ import annotations

import shlex
from typing import Any

from onebp_plan import StudyPlan, _cli_value


def datasets(config: dict[str, Any]) -> list[str]:
    """``bench.datasets`` (null = every dataset of the study; [] = no benchmark). A known dataset the study
    does not run is left out; an unknown name never gets here (onebp_plan.build refuses it)."""
    chosen = (config.get("bench") or {}).get("datasets")
    return [d for d in (config["datasets"] if chosen is None else chosen) if d in config["datasets"]]


def threads(workflow: Any) -> int:
    """The bench job's threads: every core of a local run (``--cores``), so that it runs alone; 1 under a
    cluster executor, where Snakemake has no total core count (``workflow.cores`` raises while the
    Snakefile is parsed) and the job gets a whole node by its executor's means (``--exclusive``)."""
    from snakemake.exceptions import WorkflowError

    try:
        return int(workflow.cores)
    except WorkflowError:
        return 1


def methods(config: dict[str, Any]) -> list[str]:
    return list((config.get("bench") or {}).get("methods", ["onebp", "twobp"]))


def split(plan: StudyPlan, dataset: str) -> str:
    """The clean split (its validation part is what an evaluation is timed on), else the primary one."""
    protocol = "clean" if (dataset, "clean") in plan.splits else plan.primary_protocol()
    return plan.split_dir(dataset, protocol)


def tuned_inputs(plan: StudyPlan, dataset: str, names: list[str]) -> list[str]:
    return [f for m in names for f in plan.tuned_inputs(dataset, m)]


def method_args(plan: StudyPlan, dataset: str, names: list[str], tuned_files: list[str] | None = None) -> str:
    """Each method's main setting: its tuned best.json and the config's overrides (per method).

    ``tuned_files``: the rule's declared ``tuned`` input (:func:`tuned_inputs`' files, in that order)
    where the job finds them, e.g. under a storage plugin's local prefix; default: the plan's paths."""
    planned = tuned_inputs(plan, dataset, names)
    where = dict(zip(planned, planned if tuned_files is None else [str(f) for f in tuned_files], strict=True))
    args = []
    for m in names:
        for f in plan.tuned_inputs(dataset, m):
            args += ["--params-file", f"{m}={where[f]}"]
        main = [s for (d, mm, s) in plan.settings if d == dataset and mm == m and s.startswith("main-")]
        if main:
            for k, v in plan.settings[(dataset, m, main[0])].items():
                args += ["--method-set", f"{m}:{k}={_cli_value(v)}"]
    return shlex.join(args)
