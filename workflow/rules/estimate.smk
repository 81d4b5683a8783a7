# `snakemake estimate`: price the configured study on this machine's device before running it.
# `onebp estimate` times a few epochs and one evaluation per dataset × method (at its main setting, on
# the prepared splits) and multiplies by the plan's epochs, evaluations, seeds, protocols, sweep
# points and tuning trials: device-hours per dataset and in total (for another number of GPUs run
# `onebp estimate --gpus N` by hand; workflow/README.md). Not part of `all`.
#
# A job like the others: it writes only its declared files (the merged config it prices is piped to
# `onebp estimate --config-json -`, not left beside results/estimate.md), and it holds a whole device as
# the bench job does, so no train job runs on the same GPU while it times.


rule estimate:
    input:
        splits=[PLAN.split_dir(ds, p) for ds, p in PLAN.splits],
    output:
        md="results/estimate.md",
    log:
        "results/logs/estimate.log",
    params:
        onebp=ONEBP,
        gpu_run=GPU_RUN,
        config=json.dumps(config, sort_keys=True),  # the merged, validated config this DAG was built from
        basedir=workflow.basedir,
        # where the declared splits were put: "." locally, a storage plugin's local copy otherwise
        workdir=lambda wc, input: onebp_plan.root_of(input.splits[0], PLAN.split_dir(*next(iter(PLAN.splits)))),
    conda:
        "../envs/onebp.yaml"
    resources:
        # a whole device (every slot of it, gpu_jobs_per_device) unless train jobs run on the CPU
        gpu=config["gpu_jobs_per_device"] if config["resources"]["train"].get("gpu", 1) else 0,
        mem_mb=PLAN.largest_job_resource("mem_mb", 8000),
        runtime=PLAN.largest_job_resource("runtime", 720),
    shell:
        "printf '%s' {params.config:q} | {params.gpu_run} --slots {resources.gpu} --"
        " {params.onebp} estimate --config-json - --workflow-dir {params.basedir:q}"
        " --workdir {params.workdir:q} > {output.md} 2> {log}"
