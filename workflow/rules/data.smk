# Raw data → prepared split directories (onebp data download / prepare).
#
# Every file a job reads is declared, and every path a command gets comes from {input}/{output}: with
# a storage plugin and no shared file system (profiles/kubernetes) the declared files are all a job
# finds, under the local storage prefix. So `download` is one rule per dataset (its outputs are the
# dataset's raw files, from the catalog entry or the custom source: onebp_plan.raw_files) and
# `prepare` reads exactly those.

DOWNLOAD_RULES = {ds: onebp_plan.download_rule_name(ds) for ds in config["datasets"]}


for _dataset, _rule_name in DOWNLOAD_RULES.items():

    rule:
        """Fetch (or verify files placed by hand) the raw files of a dataset, checksums included."""
        name:
            _rule_name
        input:
            dataset_file=PLAN.dataset_file(_dataset),  # a JSON definition, if the dataset has one
        output:
            marker=f"data/raw/{_dataset}.download.txt",
            # update(): a file placed by hand (e.g. a train file with no public URL) is verified in
            # place; Snakemake must not delete it before the job runs.
            raw=[update(f) for f in PLAN.raw_files(_dataset)],
        params:
            onebp=ONEBP,
            source=PLAN.source_args(_dataset),
            # data/raw (the storage plugin's local copy), and the dataset's definition file from {input}
            # when it has one (raw_dir_args says why it rides on this param)
            raw_dir=lambda wc, input, output: onebp_plan.raw_dir_args(output.marker, input.dataset_file),
        conda:
            "../envs/onebp.yaml"
        log:
            f"results/logs/download/{_dataset}.log",
        retries: 2
        localrule: True
        shell:
            "{params.onebp} data download {params.source} --raw-dir {params.raw_dir} > {output.marker} 2> {log}"


rule prepare:
    """Parse, filter, split and remap one dataset for one protocol (paper: no validation part)."""
    input:
        raw=lambda wc: PLAN.raw_files(wc.dataset),
        dataset_file=lambda wc: PLAN.dataset_file(wc.dataset),
    output:
        directory("data/splits/{dataset}/{prep}"),
    params:
        onebp=ONEBP,
        source=lambda wc: PLAN.source_args(wc.dataset),
        prepare=lambda wc: PLAN.prepare_cli(wc.dataset, wc.prep.split("-", 1)[0]),
        # RAW_DIR of data/raw/<dataset>/<file>, where the declared raw files were put (locally: data/raw),
        # and the definition file from {input} when the dataset has one (see raw_dir_args)
        raw_dir=lambda wc, input: onebp_plan.raw_dir_args(onebp_plan.raw_dir_of(input.raw[0]), input.dataset_file,
                                                          is_dir=True),
    conda:
        "../envs/onebp.yaml"
    log:
        "results/logs/prepare/{dataset}/{prep}.log",
    threads: 1
    resources:
        mem_mb=config["resources"]["prepare"].get("mem_mb", 8000),
        runtime=config["resources"]["prepare"].get("runtime", 60),
    shell:
        "{params.onebp} data prepare {params.source} --raw-dir {params.raw_dir} --offline {params.prepare}"
        " --out {output} > {log} 2>&1"
