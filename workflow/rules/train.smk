# One job per dataset × method × setting × protocol × seed (onebp gpu-run -- onebp train).
# Every file a later job reads is an output here (metrics.json, curve.csv, per_user_test.npz,
# config.json), so a storage plugin (the Kubernetes profile) moves them to the report jobs.
# checkpoint.pt is deliberately not an output: Snakemake deletes the outputs of a failed job, and the
# checkpoint is exactly what its retry must find to resume. It resumes where the run directory
# persists (local disk, a shared file system as with the SLURM profile); under a storage plugin a
# failed job's files are never uploaded, declared or not, so a retry there starts over.
# The setting id hashes the resolved --set overrides and the data, so a changed hyper-parameter
# writes a new run directory and reruns only the runs (and aggregates) that depend on it.

rule train:
    input:
        split=lambda wc: PLAN.split_dir(wc.dataset, wc.protocol),
        tuned=lambda wc: PLAN.tuned_inputs(wc.dataset, wc.method),  # best.json of a tuned method
    output:
        metrics="results/runs/{dataset}/{method}/{setting}/{protocol}/seed{seed}/metrics.json",
        curve="results/runs/{dataset}/{method}/{setting}/{protocol}/seed{seed}/curve.csv",
        per_user="results/runs/{dataset}/{method}/{setting}/{protocol}/seed{seed}/per_user_test.npz",
        config="results/runs/{dataset}/{method}/{setting}/{protocol}/seed{seed}/config.json",
    params:
        onebp=ONEBP,
        gpu_run=GPU_RUN,
        run_dir=subpath(output.metrics, parent=True),
        sets=lambda wc: PLAN.set_args(wc.dataset, wc.method, wc.setting),
        # --params-file of the declared best.json, where it was put (a storage plugin's local copy)
        params_file=lambda wc, input: onebp_plan.params_file_args(input.tuned),
    conda:
        "../envs/onebp.yaml"
    log:
        "results/logs/train/{dataset}/{method}/{setting}/{protocol}/seed{seed}.log",
    benchmark:
        "results/benchmarks/train/{dataset}/{method}/{setting}/{protocol}/seed{seed}.tsv"
    wildcard_constraints:
        seed=r"\d+",
        protocol="clean|paper",
    threads: PLAN.train_resource("threads", 1)
    resources:
        gpu=PLAN.train_resource("gpu", 1),
        mem_mb=PLAN.train_resource("mem_mb", 8000),
        runtime=PLAN.train_resource("runtime", 720),
    shell:
        "ONEBP_MEMORY_MB={resources.mem_mb} {params.gpu_run} --slots {resources.gpu} -- {params.onebp} train --data {input.split} --method {wildcards.method}"
        " {params.params_file} {params.sets} --set seed={wildcards.seed} --set protocol={wildcards.protocol}"
        " --set dataset={wildcards.dataset} --set threads={threads} --out {params.run_dir} > {log} 2>&1"
