"""`onebp report collect` refuses what is not a finished run in one stderr line naming it (exit 2,
nothing written): a file given as a run directory, a metrics.json or config.json that is not UTF-8
or not a JSON object, and a --root that does not exist or is a file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from onebp.cli import main

BINARY = b"\xff\xfe\x00\x81 not text"


def make_run(root: Path, seed: int = 0) -> Path:
    """A finished run's directory: the two files collect reads."""
    d = root / "runs" / "tiny" / "onebp" / "main" / "clean" / f"seed{seed}"
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({"dataset": "tiny", "method": "onebp", "seed": seed,
                                                "protocol": "clean", "test": {"ndcg@20": 0.25}}))
    (d / "config.json").write_text(json.dumps({"method": "onebp", "lr": 0.01}))
    return d


def collect(tmp_path: Path, *args: str) -> int:
    return main(["report", "collect", *args, "--out", str(tmp_path / "out" / "results.csv"),
                 "--runs-out", str(tmp_path / "out" / "runs.csv")])


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_a_finished_run_is_collected(tmp_path, capsys):
    run = make_run(tmp_path)
    assert collect(tmp_path, str(run)) == 0
    assert "ndcg" in (tmp_path / "out" / "results.csv").read_text()


def test_a_file_given_as_a_run_directory_is_refused(tmp_path, capsys):
    run = make_run(tmp_path)
    assert collect(tmp_path, str(run / "config.json")) == 2
    err = one_error_line(capsys)
    assert str(run / "config.json") in err and "not a directory" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["metrics.json", "config.json"])
def test_a_run_file_that_is_not_utf8_is_refused_naming_it(tmp_path, capsys, name):
    run = make_run(tmp_path)
    (run / name).write_bytes(BINARY)
    assert collect(tmp_path, str(run)) == 2
    assert str(run / name) in one_error_line(capsys)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["metrics.json", "config.json"])
def test_a_run_file_that_is_a_json_list_is_refused_naming_it(tmp_path, capsys, name):
    run = make_run(tmp_path)
    (run / name).write_text("[1, 2]")
    assert collect(tmp_path, str(run)) == 2
    err = one_error_line(capsys)
    assert str(run / name) in err and "JSON object" in err
    assert not (tmp_path / "out").exists()


def test_a_metrics_json_without_the_run_labels_is_refused(tmp_path, capsys):
    run = make_run(tmp_path)
    (run / "metrics.json").write_text(json.dumps({"dataset": "tiny", "test": {}}))
    assert collect(tmp_path, str(run)) == 2
    err = one_error_line(capsys)
    assert str(run / "metrics.json") in err and "method" in err and "seed" in err


@pytest.mark.parametrize(("what", "expected"), [("missing", "no such directory"), ("file", "not a directory")])
def test_a_root_that_is_not_a_directory_is_refused(tmp_path, capsys, what, expected):
    root = tmp_path / "nowhere"
    if what == "file":
        root.write_text("not a directory\n")
    assert collect(tmp_path, "--root", str(root)) == 2
    err = one_error_line(capsys)
    assert "--root" in err and str(root) in err and expected in err
    assert not (tmp_path / "out").exists()


def test_a_non_utf8_metrics_json_under_root_is_refused_naming_it(tmp_path, capsys):
    run = make_run(tmp_path)
    (run / "metrics.json").write_bytes(BINARY)
    assert collect(tmp_path, "--root", str(tmp_path / "runs")) == 2
    assert str(run / "metrics.json") in one_error_line(capsys)
