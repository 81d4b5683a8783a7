# Tuning (config key `tuning`; workflow/tuning_plan.py): per dataset × tuned method, n_trials trials
# drawn when the workflow is parsed, each an `onebp train` tuning-trial run on the clean split (trains on
# train, selects on validation, never evaluates the test part); `onebp tune summarize` picks the best
# validation value into best.json, which every run of the method reads (train.smk, --params-file).

TUNING = PLAN.tuning


if TUNING:

    rule tune_trial:
        input:
            split=lambda wc: PLAN.split_dir(wc.dataset, "clean"),
        output:
            metrics="results/tuning/{dataset}/{method}/trials/{trial}/metrics.json",
            config="results/tuning/{dataset}/{method}/trials/{trial}/config.json",  # read by `tune summarize`
            curve="results/tuning/{dataset}/{method}/trials/{trial}/curve.csv",  # the tuning table's epoch-cap check
        params:
            onebp=ONEBP,
            gpu_run=GPU_RUN,
            run_dir=subpath(output.metrics, parent=True),
            sets=lambda wc: TUNING.trial_set_args(wc.dataset, wc.method, wc.trial),
        conda:
            "../envs/onebp.yaml"
        log:
            "results/logs/tune/{dataset}/{method}/{trial}.log",
        benchmark:
            "results/benchmarks/tune/{dataset}/{method}/{trial}.tsv"
        wildcard_constraints:
            dataset=r"[^/]+",
            method=r"[^/]+",
            trial=r"trial\d+-[0-9a-f]+",
        threads: PLAN.train_resource("threads", 1)
        resources:
            gpu=PLAN.train_resource("gpu", 1),
            mem_mb=PLAN.train_resource("mem_mb", 8000),
            runtime=PLAN.train_resource("runtime", 720),
        shell:
            "ONEBP_MEMORY_MB={resources.mem_mb} {params.gpu_run} --slots {resources.gpu} -- {params.onebp} train --data {input.split} --method {wildcards.method}"
            " {params.sets} --set dataset={wildcards.dataset} --set threads={threads}"
            " --out {params.run_dir} > {log} 2>&1"

    rule tune:
        """The best trial of one method on one dataset: trials.csv, best.json."""
        input:
            # `tune summarize` gets each trial's metrics.json and reads its config.json next to it
            metrics=lambda wc: [f"{d}/metrics.json" for d in TUNING.trial_dirs(wc.dataset, wc.method)],
            configs=lambda wc: [f"{d}/config.json" for d in TUNING.trial_dirs(wc.dataset, wc.method)],
        output:
            trials="results/tuning/{dataset}/{method}/trials.csv",
            best="results/tuning/{dataset}/{method}/best.json",
        params:
            onebp=ONEBP,
            tuned_keys=lambda wc: TUNING.keys(wc.dataset, wc.method),
            budget=TUNING.budget_json(),
            out_dir=subpath(output.best, parent=True),
        conda:
            "../envs/onebp.yaml"
        log:
            "results/logs/tune/{dataset}/{method}.log",
        wildcard_constraints:
            dataset=r"[^/]+",
            method=r"[^/]+",
        resources:
            mem_mb=config["resources"]["report"].get("mem_mb", 4000),
            runtime=config["resources"]["report"].get("runtime", 30),
        shell:
            "{params.onebp} tune summarize --method {wildcards.method} --dataset {wildcards.dataset}"
            " --keys {params.tuned_keys} --budget '{params.budget}' --out-dir {params.out_dir}"
            " {input.metrics} > {log} 2>&1"

    rule tuning_table:
        """Chosen settings and validation values of every tuned method."""
        input:
            best=TUNING.best_outputs(),
            trials=TUNING.trials_outputs(),  # read next to each best.json
            curves=TUNING.trial_files("curve.csv"),  # the chosen trials' curves (epoch-cap check)
            configs=TUNING.trial_files("config.json"),  # their epoch cap and select_metric (the same check)
        output:
            **{ext: f"results/tables/tuning.{ext}" for ext in ("md", "tex", "csv", "html")},
        params:
            onebp=ONEBP,
            out=subpath(output.md, strip_suffix=".md"),
            methods=",".join(config["methods"]),
            datasets=",".join(config["datasets"]),
        conda:
            "../envs/onebp.yaml"
        log:
            "results/logs/report/tuning_table.log",
        shell:
            "{params.onebp} report tuning {input.best} --out {params.out}"
            " --methods {params.methods} --datasets {params.datasets} > {log} 2>&1"
