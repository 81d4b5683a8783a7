"""``onebp report reference``: what a frozen reference holds, and what it never holds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from onebp.errors import UserError
from onebp.report.reference import freeze


def _study(work: Path) -> None:
    run = work / "results/runs/toy/onebp/main-00000000/clean/seed0"
    run.mkdir(parents=True)
    for name, body in {"config.json": {"eval_every": 1}, "metrics.json": {"seed": 0},
                       "env.json": {"device": "cpu", "device_name": "x86_64", "torch_threads": 1,
                                    "packages": {"torch": "2.13.0"}}}.items():
        (run / name).write_text(json.dumps(body))
    (run / "checkpoint.pt").write_bytes(b"weights")
    (run / "per_user_test.npz").write_bytes(b"arrays")
    res = work / "results"
    (res / "results.csv").write_text(f"dataset,method,run_dir\ntoy,onebp,{run.relative_to(work)}\n")
    (res / "REPORT.md").write_text("# report\n")
    (res / "tables").mkdir()
    (res / "tables/main.md").write_text("| a |\n")
    tuned = res / "tuning/toy/onebp"
    (tuned / "trials/trial00-aaaa").mkdir(parents=True)
    (tuned / "best.json").write_text("{}")
    (tuned / "trials.csv").write_text("trial,status\n0,ok\n")
    (tuned / "trials/trial00-aaaa/checkpoint.pt").write_bytes(b"weights")


def test_freeze_copies_results_tuning_and_run_records_only(tmp_path: Path) -> None:
    _study(tmp_path)
    out = tmp_path / "results/reference/toy"
    freeze(tmp_path, out, command="snakemake --cores 2", wall="1 min")
    got = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    run = "runs/toy/onebp/main-00000000/clean/seed0"
    assert got == {"README.md", "results.csv", "REPORT.md", "tables/main.md", "tuning/toy/onebp/best.json",
                   "tuning/toy/onebp/trials.csv", f"{run}/config.json", f"{run}/metrics.json", f"{run}/env.json"}
    readme = (out / "README.md").read_text()
    assert "snakemake --cores 2" in readme and "1 min" in readme and "torch 2.13.0" in readme


def test_freeze_without_results_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="results.csv"):
        freeze(tmp_path, tmp_path / "out", command="x", wall="y")
