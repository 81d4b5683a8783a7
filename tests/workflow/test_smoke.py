"""End to end: the smoke preset runs the whole DAG (download over HTTP from 127.0.0.1 → prepare →
train → tables → figures → report) in a temporary directory; a rerun does nothing; a changed
hyper-parameter of one method reruns only that method's train jobs and the aggregates."""

from __future__ import annotations

import functools
import http.server
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.workflow.test_workflow import REPO, job_counts, snakemake

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """Serves config/smoke/ (the tiny ML-100K-format zip) on a free port of 127.0.0.1."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(REPO / "config" / "smoke"))
    handler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def smoke(server: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, float]:
    work = tmp_path_factory.mktemp("smoke")
    cfg = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    cfg["dataset_options"]["tiny"]["url"] = f"{server}/ml-100k-tiny.zip"
    configfile = work / "smoke.yaml"
    configfile.write_text(yaml.safe_dump(cfg))
    start = time.monotonic()
    # Two fake GPUs: the train jobs go through the real slot locks (in a private lock directory) and
    # get CUDA_VISIBLE_DEVICES=0 or 1; as no such CUDA device exists here, torch trains on the CPU
    # (ONEBP_FAKE_GPUS: otherwise a job holding a GPU slot refuses to train on the CPU).
    env = {"ONEBP_GPUS": "0,1", "ONEBP_FAKE_GPUS": "1", "ONEBP_GPU_SLOTS_DIR": str(work / "gpu-slots")}
    r = snakemake(work, "--cores", "2", "--resources", "gpu=2", "--configfile", str(configfile), env=env)
    elapsed = time.monotonic() - start
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return work, configfile, elapsed


def test_smoke_outputs(smoke: tuple[Path, Path, float]) -> None:
    work, _, elapsed = smoke
    # A guard against a hung DAG, not a speed test (speed is measured by benchmark commands): the
    # smoke preset takes 1-2 minutes on a 2-core CPU, more when the machine is shared.
    assert elapsed < 600, f"smoke preset took {elapsed:.0f} s"
    res = work / "results"
    for name in ("main", "comparisons", "efficiency", "paper", "protocol_gap"):
        for ext in ("md", "tex", "csv", "html"):
            assert (res / "tables" / f"{name}.{ext}").stat().st_size > 0
    for name in ("curves", "time_quality", "epoch_time", "memory", "sweep_beta", "sweep_aggregation", "protocol_gap"):
        for ext in ("png", "pdf"):
            assert (res / "figures" / f"{name}.{ext}").stat().st_size > 1000
    main = (res / "tables" / "main.md").read_text()
    assert "| tiny" in main and "onebp" in main and "twobp" in main and "±" in main
    assert "tiny" in (res / "report.md").read_text()
    # Raw data came through the real download code, verified by sha256.
    assert "verified" in (work / "data" / "raw" / "tiny.download.txt").read_text()
    runs = sorted(res.glob("runs/tiny/*/*/*/seed*/metrics.json"))
    assert len(runs) == 2 * 2 * 2 + 1 + 2  # methods × seeds × protocols + β point + the control × 2 seeds
    assert len(list(res.glob("benchmarks/train/**/*.tsv"))) == len(runs)
    logs = [p.read_text() for p in res.glob("logs/train/**/*.log")]
    assert len(logs) == len(runs)
    # Concurrent train jobs took different GPU slots (two at a time, two devices).
    devices = {line.split("CUDA_VISIBLE_DEVICES=")[1].strip() for log in logs for line in log.splitlines()
               if line.startswith("onebp gpu-run:")}
    assert devices == {"'0'", "'1'"}


def test_smoke_reproduction_report_and_benchmark(smoke: tuple[Path, Path, float]) -> None:
    import json

    work, _, _ = smoke
    res = work / "results"
    bench = json.loads((res / "bench" / "tiny.json").read_text())
    assert [r["method"] for r in bench["records"]] == ["onebp", "twobp", "twobp", "onebp"]  # interleaved
    report = (res / "REPORT.md").read_text()
    for claim in ("1a", "1b", "2a", "2b", "3a", "3b", "3c"):
        assert f"| {claim}: " in report
    assert "## Parity with the official code" in report and "not run" in report
    assert "](runs/tiny/onebp/main-" in report  # links to the run directories
    assert (res / "tables" / "claims.html").stat().st_size > 1000


def _same_software(work: Path, reference: Path) -> bool:
    """Whether every rerun ran with the reference's Python, torch and numpy on the same architecture:
    the condition under which the smoke numbers reproduce bit for bit (results/reference/smoke)."""
    def software(env: Path) -> tuple:
        e = json.loads(env.read_text())
        return e.get("python"), e.get("processor"), e["packages"].get("torch"), e["packages"].get("numpy")

    ref = {software(p) for p in (reference / "runs").rglob("env.json")}
    ours = {software(p) for p in (work / "results" / "runs").rglob("env.json")}
    return len(ref) == 1 and ours == ref


def test_smoke_matches_the_committed_reference(smoke: tuple[Path, Path, float]) -> None:
    """`onebp report compare` against results/reference/smoke/results.csv (made by running this
    preset; regenerate it as results/reference/smoke/README.md says when a change is meant to move
    the smoke numbers). With the reference's software every value must be identical, seed by seed:
    its two seeds spread so widely that compare's default allowance (5 σ) lets every cell move by
    +0.02 unnoticed. Elsewhere (another torch build or CPU architecture) floating point may differ in
    the last bits, and compare's allowance is what applies."""
    import subprocess
    import sys

    import pandas as pd

    work, _, _ = smoke
    reference = REPO / "results" / "reference" / "smoke"
    r = subprocess.run([sys.executable, "-m", "onebp", "report", "compare", str(work / "results" / "results.csv"),
                        str(reference / "results.csv")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "the rerun matches the reference" in r.stdout
    if not _same_software(work, reference):
        return
    from onebp.report.layout import setting_tag

    key = ["dataset", "method", "setting", "seed", "protocol", "split", "metric", "k"]

    def ranking_values(path: Path) -> pd.DataFrame:
        # ranking metrics only (timings and memory never repeat); settings by tag, as compare matches
        # them (a setting's hash also covers workflow keys that do not move these numbers)
        df = pd.read_csv(path)
        df = df[df["split"].isin(["test", "valid", "best_on_test"])].assign(setting=df["setting"].map(setting_tag))
        return df.sort_values(key).reset_index(drop=True)

    ours, ref = ranking_values(work / "results" / "results.csv"), ranking_values(reference / "results.csv")
    assert ours[key].equals(ref[key])  # the same cells and seeds
    moved = ours[ours["value"].ne(ref["value"]) & ~(ours["value"].isna() & ref["value"].isna())]
    assert moved.empty, moved.assign(reference=ref.loc[moved.index, "value"]).head(20).to_string()


def test_smoke_tuning(smoke: tuple[Path, Path, float]) -> None:
    """The tiny tuning block: 2 trials per method on the clean split, never tested; best.json feeds
    every main run of the method (both protocols, every seed)."""
    import json

    work, _, _ = smoke
    res = work / "results"
    for method in ("onebp", "twobp"):
        tuning = res / "tuning" / "tiny" / method
        best = json.loads((tuning / "best.json").read_text())
        trials = sorted((tuning / "trials").glob("trial*/metrics.json"))
        assert len(trials) == best["n_trials"] == 2
        for t in trials:
            metrics = json.loads(t.read_text())
            assert "test" not in metrics and metrics["tuning_trial"] and metrics["epochs_run"] <= 4
            assert not (t.parent / "per_user_test.npz").exists()
        assert len((tuning / "trials.csv").read_text().splitlines()) == 3
        for cfg_path in res.glob(f"runs/tiny/{method}/main-*/*/seed*/config.json"):
            cfg = {**(c := json.loads(cfg_path.read_text())), **c["params"]}
            assert {k: cfg[k] for k in best["params"]} == best["params"], cfg_path
    table = (res / "tables" / "tuning.md").read_text()
    assert "| tiny" in table and "onebp" in table and "twobp" in table
    assert "tuning" in (res / "report.md").read_text()


def test_snakemake_report(smoke: tuple[Path, Path, float]) -> None:
    work, configfile, _ = smoke
    r = snakemake(work, "--configfile", str(configfile), "--report", "results/report.html")
    assert r.returncode == 0, r.stderr[-2000:]
    html = (work / "results" / "report.html").read_text(errors="replace")
    assert "sweep_beta.png" in html and "main.html" in html


def test_rerun_does_nothing(smoke: tuple[Path, Path, float]) -> None:
    work, configfile, _ = smoke
    r = snakemake(work, "--cores", "2", "--configfile", str(configfile), env={"ONEBP_GPUS": ""})
    assert r.returncode == 0 and "Nothing to be done" in r.stdout + r.stderr, r.stderr[-2000:]


def test_changed_setting_reruns_only_that_method(smoke: tuple[Path, Path, float]) -> None:
    work, configfile, _ = smoke
    r = snakemake(work, "-n", "--cores", "2", "--configfile", str(configfile),
                  "--config", "method_params={twobp: {'*': {lr: 0.02}}}")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    counts = job_counts(out)
    assert counts["train"] == 4  # twobp: 2 seeds × 2 protocols
    # lr is tuned: twobp's trial 0 (its own settings) changes, the drawn trial does not.
    assert counts["tune_trial"] == 1 and counts["tune"] == 1
    assert {k for k in counts if k not in ("train", "total", "tune_trial", "tune")} == {
        "collect", "tables", "figures", "report", "tuning_table", "bench", "claims", "all"}
    trained = set(re.findall(r"output: results/runs/tiny/([\w-]+)/", out))
    assert trained == {"twobp"}


def test_a_method_added_to_a_finished_study_is_planned_by_the_documented_resume(
        smoke: tuple[Path, Path, float], tmp_path: Path) -> None:
    """Why the docs resume with `--rerun-triggers mtime input`, not `mtime` alone: with only the mtime
    trigger Snakemake keeps an existing results.csv whose input list grew, so a method added to a
    finished study would silently never train ("Nothing to be done")."""
    work, configfile, _ = smoke
    grown = tmp_path / "grown.yaml"
    grown.write_text(yaml.safe_dump({"methods": ["onebp", "twobp", "mostpop"]}))
    args = ("-n", "--cores", "2", "--configfile", str(configfile), str(grown))
    r = snakemake(work, *args, "--rerun-triggers", "mtime")
    assert r.returncode == 0 and "Nothing to be done" in r.stdout + r.stderr, (r.stdout + r.stderr)[-2000:]
    r = snakemake(work, *args, "--rerun-triggers", "mtime", "input")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-2000:]
    assert set(re.findall(r"output: results/runs/tiny/([\w-]+)/", out)) == {"mostpop"}
    assert {"collect", "report", "all"} <= set(job_counts(out))


def test_saved_study_resumes_on_a_new_machine(smoke: tuple[Path, Path, float], tmp_path: Path) -> None:
    """`onebp study save` → a fresh working directory (splits prepared again, no .snakemake metadata) →
    `onebp study restore` → Snakemake plans no training, tuning or benchmark job, only the aggregates."""
    from onebp.cli import main as cli

    work, configfile, _ = smoke
    archive = tmp_path / "archive"
    assert cli(["study", "save", str(archive), "--workdir", str(work)]) == 0
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    r = snakemake(fresh, "--cores", "2", "--configfile", str(configfile), "--until", "prepare")
    assert r.returncode == 0, r.stderr[-2000:]
    assert cli(["study", "restore", str(archive), "--workdir", str(fresh)]) == 0
    r = snakemake(fresh, "-n", "--cores", "2", "--configfile", str(configfile))
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-2000:]
    counts = job_counts(out)
    assert not {"train", "tune_trial", "tune", "bench", "prepare"} & set(counts), counts
    assert {"collect", "report", "all"} <= set(counts)
    # A restored run whose settings the config no longer gives (a method default changed under the
    # same run path) stops the DAG before any job, naming it.
    config_json = next((fresh / "results" / "runs").rglob("config.json"))
    recorded = json.loads(config_json.read_text())
    config_json.write_text(json.dumps({**recorded, "batch_size": recorded["batch_size"] + 1}))
    r = snakemake(fresh, "-n", "--cores", "2", "--configfile", str(configfile))
    assert r.returncode != 0
    run_dir = config_json.parent.relative_to(fresh).as_posix()
    assert f"{run_dir}: ran with batch_size={recorded['batch_size'] + 1}" in r.stdout + r.stderr


def test_the_estimate_rule_prices_the_study_from_declared_files(smoke: tuple[Path, Path, float]) -> None:
    """`snakemake estimate`: a job like the others (it holds the device slots as the bench job does); the
    merged config it prices is piped, nothing undeclared is left beside results/estimate.md."""
    work, configfile, _ = smoke
    env = {"ONEBP_GPUS": "0,1", "ONEBP_FAKE_GPUS": "1", "ONEBP_GPU_SLOTS_DIR": str(work / "gpu-slots")}
    r = snakemake(work, "estimate", "--cores", "2", "--resources", "gpu=2", "--configfile", str(configfile), env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    text = (work / "results" / "estimate.md").read_text()
    assert "Device-hours" in text and "| tiny " in text
    assert sorted(p.name for p in (work / "results").glob("estimate*")) == ["estimate.md"]
