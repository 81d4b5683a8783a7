"""The Snakemake workflow: lint, the default DAG's jobs, and config errors before any job runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]


def snakemake(workdir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*SNAKEMAKE, "--directory", str(workdir), *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


def job_counts(output: str) -> dict[str, int]:
    """Per-rule job counts from Snakemake's "Job stats" table."""
    block = output.split("Job stats:", 1)[1]
    counts = {}
    for line in block.splitlines()[3:]:
        m = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if not m:
            break
        counts[m.group(1)] = int(m.group(2))
    return counts


def test_lint(tmp_path: Path) -> None:
    r = snakemake(tmp_path, "--lint")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Congratulations" in r.stdout + r.stderr


def test_default_dry_run_jobs(tmp_path: Path) -> None:
    r = snakemake(tmp_path, "-n", "--cores", "8", "--resources", "gpu=2")
    assert r.returncode == 0, r.stderr
    counts = job_counts(r.stdout + r.stderr)
    datasets, methods, seeds, protocols = 4, 9, 5, 2
    # Sweep points on ml-100k and ml-1m (config.yaml), 5 seeds each, protocol clean; a value equal to
    # the main setting reuses the main runs, except for tuned settings (β, temperature: their main
    # value is known only after tuning): beta 5, aggregation 4, duplicate_users 2, n_negatives 3 + 3,
    # dim 3 + 3, temperature 4 + 4.
    sweep_points = 2 * (5 + 4 + 2 + 6 + 6 + 8)
    tuned, trials = methods - 1, 12  # every method but mostpop has a search space; config.yaml's budget
    # one download rule per dataset: its outputs are that dataset's raw files (workflow/rules/data.smk)
    downloads = {k: counts.pop(k) for k in list(counts) if k.startswith("download_")}
    assert downloads == {"download_ml_100k": 1, "download_ml_1m": 1, "download_gowalla": 1, "download_yelp2018": 1}
    assert counts == {
        "prepare": datasets * protocols,
        "train": datasets * methods * seeds * protocols + sweep_points * seeds,
        "tune_trial": datasets * tuned * trials, "tune": datasets * tuned, "tuning_table": 1,
        "collect": 1, "tables": 1, "figures": 1, "report": 1, "all": 1, "total": counts["total"],
        "bench": datasets, "claims": 1,  # the dedicated benchmark per dataset; the reproduction report
    }
    out = r.stdout + r.stderr
    for ds in ("ml-100k", "ml-1m", "gowalla", "yelp2018"):
        assert f"results/runs/{ds}/onebp/main-" in out and f"data/splits/{ds}/clean-" in out
    # Every train job has a log and a benchmark file.
    assert out.count("benchmark: results/benchmarks/train/") == counts["train"]


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("seedz=[1]", "seedz"),
        ("methods=[onebp,no-such-method]", "no-such-method"),
        ("datasets=[ml-100k,no-such-data]", "no-such-data"),
        ("seeds=one", "'one' is not of type 'array'"),
        ("method_params={onebp: {'*': {learning_rate: 0.1}}}", "learning_rate"),
        ("report={alpah: 0.1}", "alpah"),
    ],
)
def test_bad_config_fails_before_any_job(tmp_path: Path, override: str, named: str) -> None:
    r = snakemake(tmp_path, "--cores", "1", "--config", override)
    assert r.returncode != 0
    assert named in r.stderr
    assert "Job stats" not in r.stdout + r.stderr and not (tmp_path / "data").exists()


def test_a_dataset_definition_file_is_a_declared_input(tmp_path: Path) -> None:
    """``dataset_options.<ds>.dataset_file`` is read by the download and prepare jobs: declared as their
    input (a storage plugin stages it; editing it reruns them) and passed from {input}. (It rides on the
    --raw-dir param so that datasets without one keep their commands: onebp_plan.raw_dir_args.)"""
    import json

    import yaml

    spec = {"name": "mydata", "files": [{"role": "all", "format": "u.data", "url": "http://example.invalid/u.data",
                                         "sha256": "0" * 64}], "defaults": {"split": "loo-random"}}
    (tmp_path / "defs").mkdir()
    (tmp_path / "defs" / "mydata.json").write_text(json.dumps(spec))
    config = {"datasets": ["mydata"], "methods": ["mostpop"], "seeds": [0], "protocols": ["clean"],
              "sweeps": [], "bench": {"datasets": []}, "report": {"reference": "mostpop"},
              "dataset_options": {"mydata": {"dataset_file": "defs/mydata.json"}}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    r = snakemake(tmp_path, "-n", "-p", "--cores", "1", "--until", "prepare", "--configfile", str(tmp_path / "c.yaml"))
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-2000:]
    for rule in ("download_mydata", "prepare"):
        block = out.split(f"rule {rule}:", 1)[1].split("\n\n", 1)[0]
        inputs = next(line for line in block.splitlines() if line.strip().startswith("input:"))
        assert "defs/mydata.json" in inputs.split(":", 1)[1].strip().split(", "), block
    assert out.count("--dataset mydata --raw-dir data/raw --dataset-file defs/mydata.json") == 2, out[-3000:]
