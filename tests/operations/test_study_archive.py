"""`onebp study save|restore`: finished records only, byte-identical round trip, restored files stamped
in job order after the splits, and refusals (another split, a differing file, a run in progress, a
damaged record) that write nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from onebp.cli import main as cli
from onebp.errors import UserError
from onebp.operations.study_archive import restore, save

TINY = ["--set", "epochs=2", "--set", "batch_size=64", "--set", "dim=4", "--set", "threads=1"]


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def study(tmp_path_factory, tiny_split_dir_module) -> Path:
    """A working directory as a study leaves it: two finished runs (one with its checkpoint still
    there), a finished tuning trial and its summary, a benchmark, and an unfinished run."""
    work = tmp_path_factory.mktemp("study")
    split = work / "data" / "splits" / "tiny" / "clean-x"
    shutil.copytree(tiny_split_dir_module, split)
    runs = work / "results" / "runs" / "tiny"
    for method in ("onebp", "twobp"):
        out = runs / method / "main" / "clean" / "seed0"
        assert cli(["train", "--data", str(split), "--method", method, *TINY, "--out", str(out)]) == 0
    (runs / "onebp" / "main" / "clean" / "seed0" / "checkpoint.pt").write_bytes(b"weights")
    trial = work / "results" / "tuning" / "tiny" / "onebp" / "trials" / "t0"
    assert cli(["train", "--data", str(split), "--method", "onebp", *TINY, "--set", "tuning_trial=true",
                "--out", str(trial)]) == 0
    assert cli(["tune", "summarize", str(trial), "--method", "onebp", "--dataset", "tiny", "--keys", "lr",
                "--out-dir", str(trial.parent.parent)]) == 0
    (work / "results" / "bench").mkdir()
    (work / "results" / "bench" / "tiny.json").write_text('{"rows": []}')
    (work / "results" / "bench" / "tiny.csv").write_text("method\n")
    stopped = runs / "onebp" / "main" / "clean" / "seed1"
    stopped.mkdir(parents=True)
    (stopped / "config.json").write_text((runs / "onebp" / "main" / "clean" / "seed0" / "config.json").read_text())
    (stopped / "checkpoint.pt").write_bytes(b"half")
    return work


@pytest.fixture(scope="module")
def tiny_split_dir_module(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("split") / "tiny"
    assert cli(["data", "synth", "--out", str(out), "--n-users", "40", "--n-items", "30", "--mean-degree", "8",
                "--min-degree", "3"]) == 0
    return out


def test_save_keeps_exactly_the_finished_records(study: Path, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    n = save(study, archive)
    kept = {p for p in tree(archive) if p != "README.md"}
    run = "results/runs/tiny/{}/main/clean/seed0/{}"
    expected = {run.format(m, f) for m in ("onebp", "twobp")
                for f in ("config.json", "env.json", "metrics.json", "curve.csv", "per_user_test.npz")}
    expected |= {f"results/tuning/tiny/onebp/trials/t0/{f}" for f in ("config.json", "env.json", "metrics.json",
                                                                    "curve.csv")}
    expected |= {"results/tuning/tiny/onebp/best.json", "results/tuning/tiny/onebp/trials.csv",
                 "results/bench/tiny.json", "results/bench/tiny.csv"}
    assert kept == expected  # no checkpoint, nothing of the unfinished seed1
    assert all((archive / p).read_bytes() == (study / p).read_bytes() for p in kept)
    assert n == {"records": 5, "new_records": 5, "files": len(expected), "unfinished": 1}
    # A second save adds nothing; a record that changed under the same path is refused, archive untouched.
    assert save(study, archive)["files"] == 0
    before = tree(archive)
    metrics = study / run.format("twobp", "metrics.json")
    original = metrics.read_bytes()
    metrics.write_text(json.dumps({**json.loads(original), "epochs_run": 99}))
    try:
        with pytest.raises(UserError, match="twobp/main/clean/seed0/metrics.json: already there with other"):
            save(study, archive)
    finally:
        metrics.write_bytes(original)
    assert tree(archive) == before


def fresh_workdir(study: Path, root: Path) -> Path:
    """A new machine's working directory: the study's splits prepared again, no results."""
    work = root / "work"
    shutil.copytree(study / "data", work / "data")
    return work


def test_restore_round_trip_stamps_in_job_order(study: Path, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    save(study, archive)
    work = fresh_workdir(study, tmp_path)
    n = restore(archive, work)
    restored = tree(work / "results")
    assert restored == {p.removeprefix("results/"): b for p, b in tree(archive).items() if p.startswith("results/")}
    assert n["files"] == len(restored)
    split_time = max(p.stat().st_mtime for p in (work / "data").rglob("*"))
    t = {p: (work / "results" / p).stat().st_mtime for p in restored}
    trial = t["tuning/tiny/onebp/trials/t0/metrics.json"]
    summary = t["tuning/tiny/onebp/best.json"]
    run = t["runs/tiny/onebp/main/clean/seed0/metrics.json"]
    assert split_time < trial < summary < run  # no input looks newer than what was made from it
    assert t["bench/tiny.json"] >= summary
    # Restoring again is a no-op: identical files are skipped, not refused.
    assert restore(archive, work)["files"] == 0


def test_restore_refuses_runs_of_another_split(study: Path, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    save(study, archive)
    work = fresh_workdir(study, tmp_path)
    train = next((work / "data").rglob("train.tsv"))
    lines = train.read_text().splitlines(keepends=True)
    train.write_text("".join(lines[:-1]))  # the same dataset name, one interaction fewer
    with pytest.raises(UserError, match=r"config.json: its split \(sha256:.*is not under .*--until prepare"):
        restore(archive, work)
    assert not (work / "results").exists()


def test_restore_refuses_a_differing_file_and_a_run_in_progress(study: Path, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    save(study, archive)
    work = fresh_workdir(study, tmp_path)
    mine = work / "results" / "runs" / "tiny" / "twobp" / "main" / "clean" / "seed0" / "curve.csv"
    mine.parent.mkdir(parents=True)
    mine.write_text("epoch\n1\n")
    with pytest.raises(UserError, match="twobp/main/clean/seed0/curve.csv: already there with other content"):
        restore(archive, work)
    assert tree(work / "results") == {"runs/tiny/twobp/main/clean/seed0/curve.csv": b"epoch\n1\n"}
    mine.unlink()
    (mine.parent / "checkpoint.pt").write_bytes(b"half")
    with pytest.raises(UserError, match="seed0/checkpoint.pt: a run in progress or stopped there"):
        restore(archive, work)
    assert tree(work / "results") == {"runs/tiny/twobp/main/clean/seed0/checkpoint.pt": b"half"}


def test_damaged_records_are_named(study: Path, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    save(study, archive)
    config = archive / "results" / "runs" / "tiny" / "onebp" / "main" / "clean" / "seed0" / "config.json"
    config.write_bytes(b"\xff\xfe")
    work = fresh_workdir(study, tmp_path)
    with pytest.raises(UserError, match="seed0/config.json: not a readable JSON file"):
        restore(archive, work)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="empty: holds no saved run"):
        restore(tmp_path / "empty", work)
    assert not (work / "results").exists()


def test_command_line(study: Path, tmp_path: Path, capsys) -> None:
    archive = tmp_path / "archive"
    assert cli(["study", "save", str(archive), "--workdir", str(study)]) == 0
    assert "newly finished records saved" in capsys.readouterr().err
    work = fresh_workdir(study, tmp_path)
    assert cli(["study", "restore", str(archive), "--workdir", str(work)]) == 0
    assert cli(["study", "restore", str(archive), "--workdir", str(tmp_path / "nope")]) == 2
    assert "--workdir" in capsys.readouterr().err.splitlines()[-1]


# -- whole records only (an interrupted copy, a missing output, a damaged file) ----------------------
RUN0 = Path("results/runs/tiny/onebp/main/clean/seed0")
TRIAL0 = Path("results/tuning/tiny/onebp/trials/t0")
SUMMARY = Path("results/tuning/tiny/onebp")

#: the outputs of each record's rule (workflow/rules/train.smk, tune.smk, bench.smk)
OUTPUTS = {"run": {"config.json", "metrics.json", "curve.csv", "per_user_test.npz"},
           "trial": {"config.json", "metrics.json", "curve.csv"}, "summary": {"best.json", "trials.csv"},
           "bench": {"tiny.json", "tiny.csv"}}
#: (relative file, damage): None deletes the file, bytes replace its content
DAMAGE = {
    "run without curve": (RUN0 / "curve.csv", None),
    "run without npz": (RUN0 / "per_user_test.npz", None),
    "trial without curve": (TRIAL0 / "curve.csv", None),
    "summary without trials.csv": (SUMMARY / "trials.csv", None),
    "bench without csv": (Path("results/bench/tiny.csv"), None),
    "50-byte npz": (RUN0 / "per_user_test.npz", b"PK\x03\x04" + b"\x00" * 46),
    "cut env.json": (RUN0 / "env.json", b'{"trunc'),
    "cut best.json": (SUMMARY / "best.json", b'{"method":'),
    "cut curve.csv": (TRIAL0 / "curve.csv", b"epoch,loss\n1,0.5"),
}


def damage(root: Path, case: str) -> Path:
    rel, content = DAMAGE[case]
    if content is None:
        (root / rel).unlink()
    else:
        (root / rel).write_bytes(content)
    return rel


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_restore_refuses_an_incomplete_or_damaged_record_naming_the_file(study: Path, tmp_path: Path,
                                                                         case: str) -> None:
    archive = tmp_path / "archive"
    save(study, archive)
    rel = damage(archive, case)
    work = fresh_workdir(study, tmp_path)
    with pytest.raises(UserError, match=str(rel).replace(".", r"\.") + ": "):
        restore(archive, work)
    assert not (work / "results").exists()  # refused before anything was written


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_save_refuses_an_incomplete_or_damaged_record_in_the_workdir(study: Path, tmp_path: Path,
                                                                     case: str) -> None:
    work = tmp_path / "study"
    shutil.copytree(study, work)
    rel = damage(work, case)
    with pytest.raises(UserError, match=str(rel).replace(".", r"\.") + ": .*nothing saved"):
        save(work, tmp_path / "archive")
    assert not (tmp_path / "archive").exists()


def test_an_interrupted_save_leaves_no_finished_looking_record(study: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk stops the copy at any file: whatever it left in the archive is either absent or a
    whole record, so a restore from it (or the next save) never takes a part for a finished run."""
    import onebp.operations.study_archive as sa

    copy = sa._copy
    order: list[Path] = []
    monkeypatch.setattr(sa, "_copy", lambda src, dst: (order.append(dst), copy(src, dst)))
    save(study, tmp_path / "whole")
    names = [p.relative_to(tmp_path / "whole") for p in order]
    for stop in range(len(names)):
        archive = tmp_path / f"cut{stop}"
        done = iter(range(stop))

        def full_disk(src: Path, dst: Path, done=done) -> None:
            if next(done, None) is None:
                raise OSError(28, "No space left on device")
            copy(src, dst)

        monkeypatch.setattr(sa, "_copy", full_disk)
        with pytest.raises(OSError):
            save(study, archive)
        records, _ = sa._finished_records(archive) if archive.is_dir() else ([], [])
        for rec in records:  # every record that looks finished holds all its rule's outputs
            have = {p.name for p in (archive / rec.folder).iterdir()}
            assert OUTPUTS[rec.kind] <= have, (stop, rec.folder, sorted(have))
        monkeypatch.setattr(sa, "_copy", copy)
        assert save(study, archive)["records"] == 5  # the next save completes it
        shutil.rmtree(archive)
    # the finished markers come last within their record
    for marker in ("metrics.json", "best.json", "tiny.json"):
        for i, name in enumerate(names):
            if name.name == marker:
                assert all(n.parent != name.parent for n in names[i + 1:]), (name, names)
