"""``onebp report reference``: what a frozen reference holds, and what it never holds; only a finished,
consistent study is frozen, every run in a place of its own, and a refusal or failure leaves --out as
it was."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from onebp.cli import main
from onebp.errors import UserError
from onebp.report.collect import load_results
from onebp.report.epoch_cap import resolve_run_dir
from onebp.report.reference import freeze

HEADER = "dataset,method,setting,seed,protocol,split,metric,k,value,run_dir\n"
RUN = "results/runs/toy/onebp/main-00000000/clean/seed0"


def _run(run: Path, method: str = "onebp", seed: int = 0, env: dict | None = None) -> str:
    """A finished run's records in ``run``; its results.csv row (run_dir left for the caller)."""
    run.mkdir(parents=True, exist_ok=True)
    value = 0.4 + 0.01 * seed - (0.02 if method == "twobp" else 0.0)
    metrics = {"dataset": "toy", "method": method, "seed": seed, "protocol": "clean", "test": {"ndcg@20": value}}
    env = {"device": "cpu", "device_name": "x86_64", "torch_threads": 1,
           "packages": {"torch": "2.13.0"}} if env is None else env
    for name, body in {"config.json": {"eval_every": 1}, "metrics.json": metrics, "env.json": env}.items():
        (run / name).write_text(json.dumps(body))
    (run / "curve.csv").write_text("epoch,valid/ndcg@20\n1,0.1\n")
    return f"toy,{method},main-00000000,{seed},clean,test,ndcg,20,{value!r}"


def _row(work: Path, row: str, run_dir: Path | str) -> None:
    with open(work / "results/results.csv", "a") as f:
        f.write(f"{row},{run_dir}\n")


def _study(work: Path) -> None:
    run = work / RUN
    row = _run(run)
    (run / "checkpoint.pt").write_bytes(b"weights")
    (run / "per_user_test.npz").write_bytes(b"arrays")
    res = work / "results"
    (res / "results.csv").write_text(HEADER)
    _row(work, row, RUN)
    (res / "REPORT.md").write_text("# report\n")
    (res / "tables").mkdir()
    (res / "tables/main.md").write_text("| a |\n")
    tuned = res / "tuning/toy/onebp"
    (tuned / "trials/trial00-aaaa").mkdir(parents=True)
    (tuned / "best.json").write_text("{}")
    (tuned / "trials.csv").write_text("trial,status\n0,ok\n")
    (tuned / "trials/trial00-aaaa/checkpoint.pt").write_bytes(b"weights")


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_freeze_copies_results_tuning_and_run_records_only(tmp_path: Path) -> None:
    _study(tmp_path)
    out = tmp_path / "results/reference/toy"
    written = freeze(tmp_path, out, command="snakemake --cores 2", wall="1 min")
    got = _files(out)
    run = "runs/toy/onebp/main-00000000/clean/seed0"
    assert got == {"README.md", "results.csv", "REPORT.md", "tables/main.md", "tuning/toy/onebp/best.json",
                   "tuning/toy/onebp/trials.csv", f"{run}/config.json", f"{run}/metrics.json", f"{run}/env.json",
                   f"{run}/curve.csv"}
    assert {p.relative_to(out).as_posix() for p in written} == got
    # a run under results/ keeps its path, so results.csv is copied byte for byte
    assert (out / "results.csv").read_bytes() == (tmp_path / "results/results.csv").read_bytes()
    readme = (out / "README.md").read_text()
    assert "snakemake --cores 2" in readme and "1 min" in readme and "torch 2.13.0" in readme


@pytest.mark.parametrize("figures", [True, False])
def test_a_reference_frozen_without_figures_links_none(tmp_path: Path, figures: bool) -> None:
    """`--no-figures`: the frozen REPORT.md must not link figures it does not ship (the smoke
    reference's did); with figures the links stay and the files come along."""
    _study(tmp_path)
    res = tmp_path / "results"
    (res / "REPORT.md").write_text("# report\n\n![curves](figures/curves.png)\n\nsee [the gap](figures/gap.png).\n")
    (res / "figures").mkdir()
    for name in ("curves.png", "gap.png"):
        (res / "figures" / name).write_bytes(b"png")
    out = tmp_path / "ref"
    freeze(tmp_path, out, command="x", wall="y", figures=figures)
    text = (out / "REPORT.md").read_text()
    if figures:
        assert text == (res / "REPORT.md").read_text() and (out / "figures/curves.png").exists()
        return
    assert "](figures/" not in text and not (out / "figures").exists()
    assert "*(figures/curves.png: figure not shipped with this reference)*" in text
    assert "see *(figures/gap.png: figure not shipped with this reference)*." in text
    assert (out / "tables/main.md").read_bytes() == (res / "tables/main.md").read_bytes()  # no figure: as is


def test_freeze_without_results_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="results.csv"):
        freeze(tmp_path, tmp_path / "out", command="x", wall="y")


def test_run_dir_with_dotdot_does_not_write_outside_out(tmp_path: Path) -> None:
    """Before: run_dir 'results/runs/../../../elsewhere/seed0' was copied to
    <out>/runs/../../../elsewhere/seed0/…, outside --out."""
    work = tmp_path / "work"
    _study(work)
    row = _run(tmp_path / "elsewhere/seed1", seed=1)
    _row(work, row, "results/runs/../../../elsewhere/seed1")
    before = _files(tmp_path)
    out = work / "results/reference/toy"
    freeze(work, out, command="x", wall="y")
    new = {p for p in _files(tmp_path) - before}
    assert new and all(p.startswith("work/results/reference/toy/") for p in new), new
    assert (out / "runs/seed1/metrics.json").exists()  # the one run outside results/: under its name
    assert load_results(out / "results.csv")["run_dir"].iloc[-1] == "results/runs/seed1"


def test_run_dir_dotdot_alone_is_kept_inside_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """run_dir '../..' (from work/) names a folder above the workflow: kept as runs/<its name>, inside
    --out (before: refused, its last component being '..'; a run reached by '..' is a run)."""
    work = tmp_path / "seed7/a/work"
    _study(work)
    _row(work, _run(tmp_path / "seed7", seed=7), "../..")
    monkeypatch.chdir(work)
    before = _files(tmp_path)
    freeze(".", "out", command="x", wall="y")
    new = _files(tmp_path) - before
    assert new and all(p.startswith("seed7/a/work/out/") for p in new), new
    assert json.loads((work / "out/runs/seed7/metrics.json").read_text())["seed"] == 7
    assert load_results(work / "out/results.csv")["run_dir"].iloc[-1] == "results/runs/seed7"


def test_an_outside_folder_name_that_is_not_plain_is_refused(tmp_path: Path) -> None:
    """Names from outside the workflow become paths under --out: only plain ones."""
    work = tmp_path / "work"
    _study(work)
    _row(work, _run(tmp_path / "x/.hidden/seed1", seed=1), tmp_path / "x/.hidden/seed1")
    _row(work, _run(tmp_path / "x/y/seed2", seed=2), tmp_path / "x/y/seed2")
    with pytest.raises(UserError, match=r"run_dir '.*/x/\.hidden/seed1': folder name '\.hidden' is not a plain name"):
        freeze(work, tmp_path / "ref", command="x", wall="y")
    assert not (tmp_path / "ref").exists()


def test_runs_outside_results_each_keep_a_place_of_their_own(tmp_path: Path) -> None:
    """Before: absolute run_dirs were kept as runs/<last component>, so onebp's seed0 was overwritten by
    twobp's seed0 (4 runs, 2 kept) and the count of files written was wrong."""
    work, runs = tmp_path / "work", tmp_path / "scratch/runs"
    (work / "results").mkdir(parents=True)
    (work / "results/results.csv").write_text(HEADER)
    listed = []
    for method in ("onebp", "twobp"):
        for seed in (0, 1):
            d = runs / f"toy/{method}/main-00000000/clean/seed{seed}"
            _row(work, _run(d, method, seed), d)  # absolute, as a cluster's scratch folder is
            listed.append({"run_dir": str(d), "method": method, "config": json.dumps({"lr": 0.1, "seed": seed})})
    pd.DataFrame(listed).to_csv(work / "results/runs.csv", index=False)
    out = tmp_path / "ref"
    written = freeze(work, out, command="x", wall="y")
    assert len(written) == len(_files(out)) == 2 + 4 * 4 + 1  # results.csv, runs.csv, 4 files a run, README
    frozen = pd.read_csv(out / "runs.csv")
    assert list(frozen["config"]) == [r["config"] for r in listed]  # only run_dir rewritten
    assert sorted(frozen["run_dir"]) == sorted(load_results(out / "results.csv")["run_dir"].unique())
    df = load_results(out / "results.csv")
    for r in df.itertuples():
        # the frozen table names where the run is kept, and `report` commands find it there
        d = Path(resolve_run_dir(r.run_dir, out))
        assert d.is_relative_to(out) and r.run_dir.startswith("results/runs/")
        m = json.loads((d / "metrics.json").read_text())
        assert (m["method"], m["seed"]) == (r.method, r.seed)
    assert df["run_dir"].nunique() == 4


def test_two_runs_that_would_share_a_place_are_refused(tmp_path: Path) -> None:
    """A run under results/runs/ and one elsewhere can map to the same runs/<path>: refused, not merged."""
    work = tmp_path / "work"
    (work / "results").mkdir(parents=True)
    (work / "results/results.csv").write_text(HEADER)
    _row(work, _run(work / "results/runs/seed0"), "results/runs/seed0")
    _row(work, _run(tmp_path / "other/seed0", "twobp"), tmp_path / "other/seed0")
    with pytest.raises(UserError, match=r"'results/runs/seed0' and '.*other/seed0' would both be kept as runs/seed0"):
        freeze(work, tmp_path / "ref", command="x", wall="y")
    assert not (tmp_path / "ref").exists()


def _unfinish(run: Path, *markers: str) -> None:
    """``run`` as a run not (yet) finished: no metrics.json, and only the given in-progress files."""
    for name in ("metrics.json", "checkpoint.pt", "run_state.json"):
        (run / name).unlink(missing_ok=True)
    for name in markers:
        (run / name).write_text("{}")


@pytest.mark.parametrize(("damage", "message"), [
    (shutil.rmtree, r"results.csv:2: run_dir '.*seed0': no such directory"),
    (_unfinish, r"results.csv:2: run_dir '.*seed0': no metrics.json \(the run did not finish\)"),
    (lambda run: _unfinish(run, "run_state.json"),
     r"results.csv:2: run_dir '.*seed0': not finished \(has run_state.json but no metrics.json"),
    (lambda run: _unfinish(run, "run_state.json", "checkpoint.pt"),
     r"results.csv:2: run_dir '.*seed0': not finished \(has run_state.json, checkpoint.pt but no metrics.json"),
])
def test_an_unfinished_or_missing_run_is_refused_before_any_write(tmp_path: Path, damage, message: str) -> None:
    _study(tmp_path)
    damage(tmp_path / RUN)
    with pytest.raises(UserError, match=message):
        freeze(tmp_path, tmp_path / "ref", command="x", wall="y")
    assert not (tmp_path / "ref").exists()


@pytest.mark.parametrize(("change", "message"), [
    (lambda m: m["test"].update({"ndcg@20": 0.9}), r"results.csv:2: run_dir '.*': test ndcg@20 is 0.4, its metrics.json has 0.9"),
    (lambda m: m.update({"seed": 3}), r"results.csv:2: run_dir '.*': seed 0, its metrics.json has 3"),
    (lambda m: m["test"].update({"recall@20": 0.2}), r"no row for test recall@20, which its metrics.json has"),
    (lambda m: m.update({"test": {"recall@20": 0.2}}), r"results.csv:2: .*test ndcg@20 is not in its metrics.json"),
])
def test_results_that_disagree_with_the_runs_metrics_are_refused(tmp_path: Path, change, message: str) -> None:
    """results.csv collected from other runs (or before a run was redone) would ship numbers no run holds."""
    _study(tmp_path)
    path = tmp_path / RUN / "metrics.json"
    metrics = json.loads(path.read_text())
    change(metrics)
    path.write_text(json.dumps(metrics))
    with pytest.raises(UserError, match=message):
        freeze(tmp_path, tmp_path / "ref", command="x", wall="y")
    assert not (tmp_path / "ref").exists()


def test_the_smoke_reference_agrees_with_its_runs() -> None:
    """The check passes on a shipped reference (run over all of results/reference/ when it was written)."""
    from onebp.report.reference import _read_results, check_metrics_agree

    ref = Path(__file__).resolve().parents[2] / "results/reference/smoke"
    df = _read_results(ref / "results.csv")
    check_metrics_agree(ref / "results.csv", df,
                        {s: Path(resolve_run_dir(s, ref)) for s in df["run_dir"].unique()})


@pytest.mark.parametrize(("table", "message"), [
    ("", r"results.csv: empty, not a results table"),
    (HEADER, r"results.csv: a header and no rows"),
    (HEADER.replace(",run_dir", "") + "toy,onebp,main-00000000,0,clean,test,ndcg,20,0.4\n",
     r"results.csv: no run_dir column"),
    (HEADER + "toy,onebp,main-00000000,0,clean,test,ndcg,20,0.4,\n", r"results.csv:2: empty run_dir"),
])
def test_a_table_without_runs_is_refused(tmp_path: Path, table: str, message: str) -> None:
    """Before: tracebacks (EmptyDataError, Usecols ValueError, TypeError on a float), or a header-only
    table frozen with exit 0 (which `report compare` then refuses as a reference)."""
    _study(tmp_path)
    (tmp_path / "results/results.csv").write_text(table)
    with pytest.raises(UserError, match=message):
        freeze(tmp_path, tmp_path / "ref", command="x", wall="y")
    assert not (tmp_path / "ref").exists()


@pytest.mark.parametrize("out", ["results", ".", "results/tables"])
def test_out_holding_what_it_freezes_is_refused(tmp_path: Path, out: str) -> None:
    """Before: --out W/results failed with SameFileError; replacing --out whole would now delete it."""
    _study(tmp_path)
    before = _snapshot(tmp_path)
    with pytest.raises(UserError, match=r"--out .* holds .*, which it would freeze"):
        freeze(tmp_path, tmp_path / out, command="x", wall="y")
    assert _snapshot(tmp_path) == before


def test_a_folder_in_place_of_a_run_file_is_refused_before_any_write(tmp_path: Path) -> None:
    """Before: IsADirectoryError after copying the other files, and no README (half a reference)."""
    _study(tmp_path)
    out = tmp_path / "ref"
    freeze(tmp_path, out, command="first", wall="y")
    before = _snapshot(out)
    curve = tmp_path / RUN / "curve.csv"
    curve.unlink()
    curve.mkdir()
    with pytest.raises(UserError, match=rf"{curve}: not a file"):
        freeze(tmp_path, out, command="second", wall="y")
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ref", "results"]


def test_a_failure_midway_leaves_the_previous_reference_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _study(tmp_path)
    out = tmp_path / "ref"
    freeze(tmp_path, out, command="first", wall="y")
    before = _snapshot(out)
    calls = []

    def copy_then_fail(src, dst):  # a disk that fills up on the third file
        calls.append(src)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real(src, dst)

    real = shutil.copyfile
    monkeypatch.setattr(shutil, "copyfile", copy_then_fail)
    with pytest.raises(UserError, match="cannot copy .No space left on device.; --out left as it was"):
        freeze(tmp_path, out, command="second", wall="y")
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ref", "results"]  # no half-built folder left


def test_refreezing_replaces_the_earlier_reference_whole(tmp_path: Path) -> None:
    """Before: files of an earlier freeze that the study no longer has stayed next to the new ones."""
    _study(tmp_path)
    out = tmp_path / "ref"
    (tmp_path / "results/tables/old.md").write_text("| stale |\n")
    freeze(tmp_path, out, command="first", wall="y")
    (tmp_path / "results/tables/old.md").unlink()
    freeze(tmp_path, out, command="second", wall="y")
    assert not (out / "tables/old.md").exists()
    assert "second" in (out / "README.md").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ref", "results"]


def test_a_non_empty_out_that_is_not_a_reference_is_not_replaced(tmp_path: Path) -> None:
    _study(tmp_path)
    out = tmp_path / "notes"
    out.mkdir()
    (out / "todo.txt").write_text("mine\n")
    with pytest.raises(UserError, match="not a frozen reference .*refusing to replace it"):
        freeze(tmp_path, out, command="x", wall="y")
    assert _snapshot(out) == {"todo.txt": b"mine\n"}


def test_the_command_line_prints_one_line_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _study(tmp_path)
    (tmp_path / "results/results.csv").write_text(HEADER)
    code = main(["report", "reference", "--workdir", str(tmp_path), "--out", str(tmp_path / "ref"),
                 "--command", "x", "--wall", "y"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "a header and no rows" in err, err


def _add_run(work: Path, seed: int, env: dict) -> None:
    run = work / f"results/runs/toy/onebp/main-00000000/clean/seed{seed}"
    _row(work, _run(run, seed=seed, env=env), run.relative_to(work))


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


def test_the_in_progress_markers_are_the_trainers() -> None:
    """report may not import training (layering), so it names the files an unfinished run leaves:
    they must stay the trainer's and the study archive's."""
    from onebp.operations.study_archive import IN_PROGRESS as archive
    from onebp.report.reference import IN_PROGRESS
    from onebp.training.commands import RUN_STATE

    assert RUN_STATE in IN_PROGRESS and set(IN_PROGRESS) == set(archive)
