"""OneBP-Bench: one DAG from raw data to the paper's tables, figures and report.

    snakemake --cores 8 --resources gpu=2                 # the study in config.yaml
    snakemake --cores 2 --configfile config/smoke.yaml   # a preset (replaces list values, merges dicts)
    snakemake --report results/report.html                # browsable report of tables and figures

Rules call the `onebp` command line; the plan (which splits, runs and paths) is built in
workflow/onebp_plan.py from the validated config. See workflow/README.md.
"""

import json
import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

min_version("8.0")

sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))
import onebp_plan  # noqa: E402

# Jobs run `python -m onebp` with the interpreter running Snakemake (the venv's) first on PATH, so it
# works even when `onebp` is not on PATH; with --sdm conda the job's activated environment
# (workflow/envs/onebp.yaml) comes first instead. The command string itself stays the same
# everywhere, so moving the venv does not change any rule's params (which would trigger reruns).
ONEBP = "python -m onebp"
GPU_RUN = "python -m onebp.operations.gpu_slots"  # = `onebp gpu-run`, minus the full CLI's start-up imports
onebp_plan.setup_environment(sys.executable)


configfile: os.path.join(workflow.basedir, "config.yaml")  # also with --directory elsewhere


report: "workflow/report/workflow.rst"


try:
    validate(config, "workflow/schemas/config.schema.yaml")
except WorkflowError:
    where = onebp_plan.schema_error_path(
        config, os.path.join(workflow.basedir, "workflow/schemas/config.schema.yaml")
    )
    if where:
        raise ValueError(f"config error: {where}") from None
    raise
try:
    PLAN = onebp_plan.build(config)
except onebp_plan.ConfigError as exc:
    raise ValueError(f"config error: {exc}") from None
# A finished run whose recorded settings the plan no longer resolves (a method default changed under
# the same run path) would be kept by Snakemake and pass for the new setting: refuse before any job.
STALE = onebp_plan.stale_runs(PLAN)
if STALE:
    raise ValueError(f"{len(STALE)} run director{'y' if len(STALE) == 1 else 'ies'} on disk ran with other settings "
                     f"than this config now gives them; move {'it' if len(STALE) == 1 else 'them'} away (or delete) "
                     "to rerun: " + "; ".join(STALE[:3]) + (f"; … {len(STALE) - 3} more" if len(STALE) > 3 else ""))


# Read by `onebp gpu-run` from the environment, so changing it never triggers a rerun.
onebp_plan.setup_environment(gpu_slots_dir=config["gpu_slots_dir"],
                             gpu_jobs_per_device=config["gpu_jobs_per_device"])


include: "workflow/rules/data.smk"
include: "workflow/rules/tune.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/bench.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/estimate.smk"


rule all:
    default_target: True
    input:
        rules.report.output,
        rules.tables.output,
        rules.figures.output,
        rules.claims.output,
        rules.tuning_table.output if PLAN.tuning else [],
