"""`onebp bench-suite`: interleaved order and the summary over repeats (the end-to-end run is in the
smoke workflow test, rule bench)."""

from __future__ import annotations

from pathlib import Path

import pytest

from onebp.operations.bench_suite import order, summarize


def test_order_alternates_every_repeat() -> None:
    assert [order(["a", "b", "c"], r) for r in range(3)] == [["a", "b", "c"], ["c", "b", "a"], ["a", "b", "c"]]


def test_summary_medians_and_spread() -> None:
    recs = [{"method": "a", "epoch_seconds_median": t, "peak_rss_train_mb": 100.0, "peak_gpu_eval_mb": None,
             "phase_seconds_median": {"step": t / 2}} for t in (1.0, 3.0, 2.0, 10.0)]
    recs.append({"method": "b", "epoch_seconds_median": 5.0})
    rows = {(r["method"], r["quantity"]): r for r in summarize(recs)}
    e = rows[("a", "epoch_seconds_median")]
    assert (e["median"], e["min"], e["max"], e["n"]) == (2.5, 1.0, 10.0, 4)
    assert e["q25"] == pytest.approx(1.75) and e["q75"] == pytest.approx(4.75)
    assert rows[("a", "phase_step_seconds")]["median"] == 1.25
    assert ("a", "peak_gpu_eval_mb") not in rows  # None (no GPU) is not a measurement
    assert rows[("b", "epoch_seconds_median")]["n"] == 1


def test_the_bench_rule_takes_every_core_and_the_main_settings(tmp_path) -> None:
    """Running alone: the bench job asks for every core Snakemake may use (any other job holds at
    least one), and it times each method at its main setting (tuned best.json, config overrides)."""
    from tests.workflow.test_workflow import snakemake

    r = snakemake(tmp_path, "-n", "-p", "--cores", "3", "results/bench/ml-1m.json")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-2000:]
    block = out.split("rule bench:", 1)[1].split("\n\n", 1)[0]
    assert "threads: 3" in block  # = --cores (no rule asks for 3 threads by itself)
    assert "bench-suite" in out and "--methods onebp,twobp" in out and "--set dataset=ml-1m" in out
    assert "--params-file onebp=results/tuning/ml-1m/onebp/best.json" in out
    assert "--method-set onebp:eval_every=1" in out


def test_the_output_prefix_keeps_a_dot_in_its_name(tiny_split_dir, tmp_path) -> None:
    """Before: --out results/bench/yelp.2018 wrote yelp.json (with_suffix), not the yelp.2018.json the
    workflow's bench rule declares."""
    from onebp.cli import main

    out = tmp_path / "yelp.2018"
    assert main(["bench-suite", "--data", str(tiny_split_dir), "--methods", "onebp", "--repeats", "1",
                 "--epochs", "1", "--evals", "1", "--warmup", "0", "--set", "dim=4", "--out", str(out)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["yelp.2018.csv", "yelp.2018.json"]


def test_the_bench_rule_parses_without_a_core_count() -> None:
    """A cluster executor runs without --cores: Snakemake's ``workflow.cores`` then raises while the
    Snakefile is parsed, which stopped `snakemake --profile profiles/slurm` before any job. The bench
    job then asks for one thread (its node comes from --exclusive)."""
    import sys

    from snakemake.exceptions import WorkflowError

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workflow"))
    try:
        import bench_plan
    finally:
        sys.path.pop(0)

    class Workflow:
        def __init__(self, cores):
            self._cores = cores

        @property
        def cores(self):  # as snakemake.workflow.Workflow.cores
            if self._cores is None:
                raise WorkflowError("Workflow requires a total number of cores to be defined")
            return self._cores

    assert bench_plan.threads(Workflow(6)) == 6
    assert bench_plan.threads(Workflow(None)) == 1
