# `snakemake estimate`: price the configured study on this machine's device before running it.
# `onebp estimate` times a few epochs and one evaluation per dataset × method (at its main setting, on
# the prepared splits) and multiplies by the plan's epochs, evaluations, seeds, protocols, sweep
# points and tuning trials: device-hours per dataset and in total (for another number of GPUs run
# `onebp estimate --gpus N` by hand; workflow/README.md). Not part of `all`.


localrules:
    estimate,


rule estimate:
    input:
        splits=[PLAN.split_dir(ds, p) for ds, p in PLAN.splits],
    output:
        "results/estimate.md",
    log:
        "results/logs/estimate.log",
    params:
        onebp=ONEBP,
        basedir=workflow.basedir,
        # where the declared splits were put: "." locally, a storage plugin's local copy otherwise
        workdir=lambda wc, input: onebp_plan.root_of(input.splits[0], PLAN.split_dir(*next(iter(PLAN.splits)))),
    run:
        import json

        resolved = output[0] + ".config.json"  # the merged, validated config this DAG was built from
        with open(resolved, "w") as f:
            json.dump(config, f)
        shell(
            "{params.onebp} estimate --config-json {resolved} --workflow-dir {params.basedir} --workdir {params.workdir:q}"
            " > {output} 2> {log}"
        )
