# The dedicated efficiency benchmark: one job per dataset runs `onebp bench-suite`, which times the
# methods' main settings interleaved (A B, B A, …) and repeated, and reports medians with spread per
# phase, training and evaluation memory apart (onebp/operations/bench_suite.py).
#
# Running alone. The job asks for every core Snakemake may use (`--cores`), and every
# job holds at least one core while it runs, so the scheduler starts it only when nothing else runs
# and starts nothing beside it until it ends; two bench jobs never overlap either. Its measurements
# use `bench.threads` torch threads (the rest of the cores stay idle on purpose). With GPUs it goes
# through `onebp gpu-run` like a train job and holds every slot of one GPU. On a cluster there is no total
# core count (`--cores` is not given; the job asks for 1 thread, bench_plan.threads): the job asks
# SLURM for a whole node (`slurm_extra: --exclusive`); other executors need the same by their own means.

import bench_plan  # workflow/bench_plan.py

BENCH = config.get("bench") or {}
BENCH_DATASETS = bench_plan.datasets(config)
BENCH_METHODS = bench_plan.methods(config)


rule bench:
    """Interleaved, repeated timing of the methods on one dataset, the only job running."""
    input:
        split=lambda wc: bench_plan.split(PLAN, wc.dataset),
        tuned=lambda wc: bench_plan.tuned_inputs(PLAN, wc.dataset, BENCH_METHODS),
    output:
        json="results/bench/{dataset}.json",
        csv="results/bench/{dataset}.csv",
    params:
        onebp=ONEBP,
        gpu_run=GPU_RUN,
        methods=",".join(BENCH_METHODS),
        # the declared best.json files where they were put (a storage plugin's local copy)
        method_args=lambda wc, input: bench_plan.method_args(PLAN, wc.dataset, BENCH_METHODS, input.tuned),
        repeats=BENCH.get("repeats", 5),
        epochs=BENCH.get("epochs", 10),
        evals=BENCH.get("evals", 5),
        warmup=BENCH.get("warmup", 2),
        torch_threads=BENCH.get("threads", 1),
        out=subpath(output.json, strip_suffix=".json"),  # bench-suite --out X writes X.json and X.csv
    conda:
        "../envs/onebp.yaml"
    log:
        "results/logs/bench/{dataset}.log",
    threads: bench_plan.threads(workflow)  # every core: runs alone (header); 1 on a cluster executor
    resources:
        # a whole device (every slot of it, gpu_jobs_per_device) unless train jobs run on the CPU
        gpu=lambda wc: config["gpu_jobs_per_device"] if PLAN.train_resource("gpu", 1)(wc) else 0,
        mem_mb=PLAN.train_resource("mem_mb", 8000),
        runtime=PLAN.train_resource("runtime", 720),
        slurm_extra="--exclusive",
    shell:
        "{params.gpu_run} --slots {resources.gpu} -- {params.onebp} bench-suite --data {input.split} --methods {params.methods}"
        " {params.method_args} --repeats {params.repeats} --epochs {params.epochs} --evals {params.evals}"
        " --warmup {params.warmup} --set dataset={wildcards.dataset} --set threads={params.torch_threads}"
        " --out {params.out} > {log} 2>&1"
