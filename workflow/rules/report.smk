# Run directories → results/results.csv → tables, figures, and a one-page Markdown summary.
# `snakemake --report results/report.html` collects the outputs marked with report().
# Every command gets its paths from {input}/{output} (or subpath() of them), never a directory named
# here: under a storage plugin (no shared file system) they are the local copies the job was given.

PROTOCOL = PLAN.primary_protocol()
PAPER_TABLE = PROTOCOL == "clean" and "paper" in config["protocols"]
BOTH_PROTOCOLS = {"clean", "paper"} <= set(config["protocols"])  # the protocol gap needs both
REP = config["report"]
# Sweeps of OneBP get a table too: every point against TwoBP at the same setting (onebp/report/sweep_table.py).
SWEEP_TABLES = [p for p in PLAN.sweep_params
                if any(s["param"] == p and "onebp" in (s.get("methods") or config["methods"]) for s in config["sweeps"])]
TABLES = (["main", "comparisons", "efficiency"] + (["paper"] if PAPER_TABLE else [])
          + (["protocol_gap"] if BOTH_PROTOCOLS else []) + [f"sweep_{p}" for p in SWEEP_TABLES])
FIGURES = (["curves", "time_quality", "epoch_time", "memory"] + [f"sweep_{p}" for p in PLAN.sweep_params]
           + (["protocol_gap"] if BOTH_PROTOCOLS else []))
# The dedicated benchmark's files (workflow/rules/bench.smk): efficiency comes from them when there are any.
BENCH_FILES = [f"results/bench/{d}.json" for d in BENCH_DATASETS]
# What the report jobs read from the run directories, declared so that a storage plugin brings them
# (tables and claims: per-user test values, config.json; figures: curve.csv, config.json).
RUN_CONFIGS = [f"{d}/config.json" for d in PLAN.run_dirs()]
PER_USER = [f"{d}/per_user_test.npz" for d in PLAN.run_dirs()]
CURVES = [f"{d}/curve.csv" for d in PLAN.run_dirs()]


rule collect:
    """The long results table (one row per run × split × metric × k), and one row per run."""
    input:
        metrics=[f"{d}/metrics.json" for d in PLAN.run_dirs()],
        configs=RUN_CONFIGS,
        curves=CURVES,  # the epoch-cap columns read each run's validation curve
    output:
        results="results/results.csv",
        runs="results/runs.csv",
    params:
        onebp=ONEBP,
    conda:
        "../envs/onebp.yaml"
    log:
        "results/logs/report/collect.log",
    resources:
        mem_mb=config["resources"]["report"].get("mem_mb", 4000),
        runtime=config["resources"]["report"].get("runtime", 30),
    shell:
        "{params.onebp} report collect {input.metrics} --out {output.results} --runs-out {output.runs} > {log} 2>&1"


rule tables:
    input:
        results=rules.collect.output.results,
        runs=rules.collect.output.runs,
        bench=BENCH_FILES,
        per_user=PER_USER,
        configs=RUN_CONFIGS,
    output:
        **{
            f"{t}_{ext}": f"results/tables/{t}.{ext}"
            for t in TABLES
            for ext in ("md", "tex", "csv")
        },
        **{
            f"{t}_html": report(
                f"results/tables/{t}.html",
                caption=f"../report/table_{'sweep' if t.startswith('sweep_') else t}.rst",
                category="Tables",
            )
            for t in TABLES
        },
    params:
        onebp=ONEBP,
        protocol=PROTOCOL,
        reference=REP["reference"],
        alpha=REP["alpha"],
        paper="--paper" if PAPER_TABLE else "",
        methods=",".join(config["methods"]),
        datasets=",".join(config["datasets"]),
        metrics=",".join(REP["metrics"]),
        ks=",".join(map(str, REP["ks"])),
        gap="--protocol-gap" if BOTH_PROTOCOLS else "",
        sweeps=" ".join(f"--sweep {p}" for p in SWEEP_TABLES),
        metric=REP["metric"],
        out_dir=subpath(output.main_md, parent=True),
    conda:
        "../envs/onebp.yaml"
    log:
        "results/logs/report/tables.log",
    shell:
        "{params.onebp} report tables --results {input.results} --out-dir {params.out_dir} --protocol {params.protocol} {params.paper}"
        " --reference {params.reference} --alpha {params.alpha} --metrics {params.metrics} --ks {params.ks}"
        " --methods {params.methods} --datasets {params.datasets} --bench {input.bench} {params.gap}"
        " --runs {input.runs} {params.sweeps} --metric {params.metric} > {log} 2>&1"


rule figures:
    input:
        results=rules.collect.output.results,
        runs=rules.collect.output.runs,
        bench=BENCH_FILES,
        curves=CURVES,
        configs=RUN_CONFIGS,
    output:
        **{
            f"{f}_png": report(
                f"results/figures/{f}.png",
                caption=f"../report/fig_{f.split('_', 1)[0] if f.startswith('sweep_') else f}.rst",
                category="Figures",
                labels={"figure": f},
            )
            for f in FIGURES
        },
        **{f"{f}_pdf": f"results/figures/{f}.pdf" for f in FIGURES},
    params:
        onebp=ONEBP,
        protocol=PROTOCOL,
        metric=REP["metric"],
        sweeps=" ".join(f"--sweep {p}" for p in PLAN.sweep_params),
        gap="--protocol-gap" if BOTH_PROTOCOLS else "",
        out_dir=subpath(output.curves_png, parent=True),
    conda:
        "../envs/onebp.yaml"
    log:
        "results/logs/report/figures.log",
    shell:
        "{params.onebp} report figures --results {input.results} --runs {input.runs} --out-dir {params.out_dir}"
        " --protocol {params.protocol} --metric {params.metric} {params.sweeps} --bench {input.bench} {params.gap}"
        " > {log} 2>&1"


rule claims:
    """The reproduction report (results/REPORT.md): every claim of the paper per dataset, the measured
    comparison, a verdict by a stated rule, parity with the official code, published anchors."""
    input:
        results=rules.collect.output.results,
        bench=BENCH_FILES,
        figures=rules.figures.output,
        # the figures REPORT.md shows (the ablation sweeps, the protocol gap)
        shown=[f"results/figures/{f}.png" for f in FIGURES if f.startswith("sweep_") or f == "protocol_gap"],
        per_user=PER_USER,
        configs=RUN_CONFIGS,  # eval_every of each run (efficiency, the epoch-cap table)
        curves=CURVES,  # the cap rule's trend test, and the matrix's count of runs without a curve
    output:
        md="results/REPORT.md",
        csv="results/tables/claims.csv",
        html=report("results/tables/claims.html", caption="../report/table_claims.rst", category="Claims"),
    params:
        onebp=ONEBP,
        reference=REP["reference"],
        alpha=REP["alpha"],
    conda:
        "../envs/onebp.yaml"
    log:
        "results/logs/report/claims.log",
    shell:
        "{params.onebp} report claims --results {input.results} --bench {input.bench} --out {output.md}"
        " --html {output.html} --csv {output.csv} --reference {params.reference} --alpha {params.alpha}"
        " --figures {input.shown} > {log} 2>&1"


rule report:
    """One Markdown page with the tables and links to the figures (results/report.md)."""
    input:
        tables=[f"results/tables/{t}.md" for t in TABLES] + (["results/tables/tuning.md"] if PLAN.tuning else []),
        figures=[f"results/figures/{f}.png" for f in FIGURES],
    output:
        "results/report.md",
    params:
        onebp=ONEBP,
    conda:
        "../envs/onebp.yaml"
    log:
        "results/logs/report/report.log",
    shell:
        "{params.onebp} report summary --tables {input.tables} --figures {input.figures} --out {output} > {log} 2>&1"
