# Raw data → prepared split directories (onebp data download / prepare).


localrules:
    download,


rule download:
    """Fetch (or verify files placed by hand) the raw files of a dataset, checksums included."""
    output:
        "data/raw/{dataset}.download.txt",
    params:
        onebp=ONEBP,
        source=lambda wc: PLAN.source_args(wc.dataset),
    conda:
        "../envs/onebp.yaml"
    log:
        "results/logs/download/{dataset}.log",
    retries: 2
    shell:
        "{params.onebp} data download {params.source} --raw-dir data/raw > {output} 2> {log}"


rule prepare:
    """Parse, filter, split and remap one dataset for one protocol (paper: no validation part)."""
    input:
        "data/raw/{dataset}.download.txt",
    output:
        directory("data/splits/{dataset}/{prep}"),
    params:
        onebp=ONEBP,
        source=lambda wc: PLAN.source_args(wc.dataset),
        prepare=lambda wc: PLAN.prepare_cli(wc.dataset, wc.prep.split("-", 1)[0]),
    conda:
        "../envs/onebp.yaml"
    log:
        "results/logs/prepare/{dataset}/{prep}.log",
    threads: 1
    resources:
        mem_mb=config["resources"]["prepare"].get("mem_mb", 8000),
        runtime=config["resources"]["prepare"].get("runtime", 60),
    shell:
        "{params.onebp} data prepare {params.source} --raw-dir data/raw --offline {params.prepare}"
        " --out {output} > {log} 2>&1"
