"""`onebp status` on a tiny run: finished, running, failed and killed runs."""

from __future__ import annotations

import json
import os

import pytest

from onebp.cli import main as cli
from onebp.operations.status import find_run_dirs, run_status

TINY = ["--set", "epochs=6", "--set", "eval_every=2", "--set", "batch_size=64", "--set", "dim=8",
        "--set", "threads=1", "--set", "patience_epochs=100"]


def test_status_of_finished_running_and_failed_runs(tiny_split_dir, tmp_path, capsys):
    done = tmp_path / "results" / "runs" / "tiny" / "onebp" / "main" / "clean" / "seed0"
    assert cli(["train", "--data", str(tiny_split_dir), "--method", "onebp", *TINY, "--out", str(done)]) == 0
    row = run_status(done)
    assert row["state"] == "finished" and (row["epoch"], row["epochs"]) == (6, 6)
    assert row["method"] == "onebp" and row["protocol"] == "clean" and row["seed"] == 0
    assert row["best"] is not None and row["best_epoch"] in (2, 4, 6) and row["best_on"] == "valid/ndcg@20"
    assert row["seconds_per_epoch"] > 0 and row["eta_seconds"] is None

    # A run in progress: its curve so far and a live process (this one); a failed one: its error.
    live = done.parent.parent / "paper" / "seed0"
    live.mkdir(parents=True)
    cfg = json.loads((done / "config.json").read_text())
    (live / "config.json").write_text(json.dumps({**cfg, "epochs": 100}))
    lines = (done / "curve.csv").read_text().splitlines()
    (live / "curve.csv").write_text("\n".join(lines[:5]) + "\n")  # header + epochs 1-4
    import socket
    import time
    (live / "run_state.json").write_text(json.dumps({"state": "running", "pid": os.getpid(),
                                                     "host": socket.gethostname(), "time": time.time()}))
    row = run_status(live)
    assert row["state"] == "running" and row["epoch"] == 4 and row["epochs"] == 100
    # clean: at most best epoch + patience (100) epochs, capped at 100 epochs: 96 epochs to go, each
    # at the median epoch time plus half a median evaluation (eval_every 2)
    import csv
    import statistics
    rows = list(csv.DictReader(open(live / "curve.csv")))
    per_epoch = statistics.median(float(r["seconds_train"]) for r in rows) + statistics.median(
        float(r["seconds_eval"]) for r in rows if r["seconds_eval"]) / 2
    assert row["eta_seconds"] == pytest.approx(96 * per_epoch) and row["eta_seconds"] > 0
    (live / "run_state.json").write_text(json.dumps({"state": "failed", "error": "UserError: boom", "pid": 1,
                                                     "host": "elsewhere", "time": 0}))
    assert run_status(live)["state"] == "failed" and "boom" in run_status(live)["error"]

    assert sorted(find_run_dirs(tmp_path / "results")) == sorted([done, live])
    assert cli(["status", str(tmp_path / "results")]) == 0
    out = capsys.readouterr().out
    assert "finished" in out and "failed: UserError: boom" in out and "6/6" in out


def test_a_killed_process_shows_as_stopped(tiny_split_dir, tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"method": "onebp", "dataset": "tiny", "epochs": 10}))
    import socket
    (run / "run_state.json").write_text(json.dumps({"state": "running", "pid": 2**22 + 12345,
                                                    "host": socket.gethostname(), "time": 0}))
    assert run_status(run)["state"] == "stopped"
