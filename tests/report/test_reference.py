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
    (run / "curve.csv").write_text("epoch,valid/ndcg@20\n1,0.1\n")
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
                   "tuning/toy/onebp/trials.csv", f"{run}/config.json", f"{run}/metrics.json", f"{run}/env.json",
                   f"{run}/curve.csv"}
    readme = (out / "README.md").read_text()
    assert "snakemake --cores 2" in readme and "1 min" in readme and "torch 2.13.0" in readme


def test_freeze_without_results_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="results.csv"):
        freeze(tmp_path, tmp_path / "out", command="x", wall="y")


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_run_dir_with_dotdot_does_not_write_outside_out(tmp_path: Path) -> None:
    """Before: run_dir 'results/runs/../../../elsewhere/seed0' was copied to
    <out>/runs/../../../elsewhere/seed0/…, outside --out."""
    work = tmp_path / "work"
    _study(work)
    away = tmp_path / "elsewhere/seed0"
    away.mkdir(parents=True)
    (away / "metrics.json").write_text("{}")
    with open(work / "results/results.csv", "a") as f:
        f.write("toy,onebp,results/runs/../../../elsewhere/seed0\n")
    before = _files(tmp_path)
    out = work / "results/reference/toy"
    freeze(work, out, command="x", wall="y")
    new = {p for p in _files(tmp_path) - before}
    assert new and all(p.startswith("work/results/reference/toy/") for p in new), new
    assert (out / "runs/seed0/metrics.json").exists()  # a run outside results/ keeps only its name


def test_run_dir_named_dotdot_is_refused_before_any_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "a/work"
    _study(work)
    (tmp_path / "metrics.json").write_text("{}")  # what run_dir '../..' (from work/) points at
    with open(work / "results/results.csv", "a") as f:
        f.write("toy,onebp,../..\n")
    monkeypatch.chdir(work)
    with pytest.raises(UserError, match=r"run_dir '\.\./\.\.': name '\.\.' is not a plain name"):
        freeze(".", "out", command="x", wall="y")
    assert not (work / "out").exists()


def _add_run(work: Path, seed: int, env: dict) -> None:
    run = work / f"results/runs/toy/onebp/main-00000000/clean/seed{seed}"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text("{}")
    (run / "env.json").write_text(json.dumps(env))
    with open(work / "results/results.csv", "a") as f:
        f.write(f"toy,onebp,{run.relative_to(work)}\n")


def test_readme_counts_the_commits_the_runs_ran_from(tmp_path: Path) -> None:
    """A study resumed across sessions spans commits: the README says which, and how many runs each,
    with a dirty tree counted apart (its code is not that commit's)."""
    _study(tmp_path)  # seed 0: an env.json without a git revision
    a, b = "a" * 40, "b" * 40
    _add_run(tmp_path, 1, {"git_revision": a, "git_dirty": False})
    _add_run(tmp_path, 2, {"git_revision": a, "git_dirty": False})
    _add_run(tmp_path, 3, {"git_revision": b, "git_dirty": True})
    out = tmp_path / "ref"
    freeze(tmp_path, out, command="x", wall="y")
    readme = (out / "README.md").read_text()
    code = readme.split("Code (")[1].split("\n\n", 2)[1].splitlines()
    assert code == ["- `aaaaaaa`: 2 runs", "- `bbbbbbb` with uncommitted changes: 1 run",
                    "- no git revision recorded (not run from a checkout): 1 run"]


def test_a_damaged_env_json_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    _study(tmp_path)
    _add_run(tmp_path, 1, {})
    env = tmp_path / "results/runs/toy/onebp/main-00000000/clean/seed1/env.json"
    env.write_text('{"git_revision": ')  # cut short by a full disk
    with pytest.raises(UserError, match=rf"{env}: cannot read"):
        freeze(tmp_path, tmp_path / "ref", command="x", wall="y")
    assert not (tmp_path / "ref").exists()
