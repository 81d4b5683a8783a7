"""`onebp status` and `onebp estimate` on a tiny run and a tiny study; EASE refused before it allocates."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from onebp.cli import main as cli
from onebp.errors import UserError
from onebp.operations import estimate as est
from onebp.operations.status import find_run_dirs, run_status

REPO = Path(__file__).resolve().parent.parent.parent
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


def test_estimate_arithmetic():
    t = est.Timing(epoch_s=2.0, eval_s=3.0, dim=32, negatives=5)
    # 10 epochs, evaluations at 5 and 10 plus the final test: 10*2 + 3*3
    assert est.run_seconds(t, 10, 5) == pytest.approx(29.0)
    # a dim-64 sweep point: epochs twice as dear, evaluations too
    assert est.run_seconds(t, 10, 5, dim=64) == pytest.approx(58.0)
    assert est.run_seconds(est.Timing(0.0, 1.5, fit_s=4.0), 0, 1) == pytest.approx(5.5)
    # timed at 100 negatives (--max-negatives), priced at 2000: epochs x (1 + 2000) / (1 + 100)
    capped = est.Timing(epoch_s=1.0, eval_s=0.0, dim=64, negatives=100)
    assert est.run_seconds(capped, 10, 100, dim=64, negatives=2000) == pytest.approx(10 * 2001 / 101)


def test_estimate_of_the_smoke_study(tiny_split_dir, capsys):
    """The smoke preset (2 methods x 2 seeds x 2 protocols, sweep points, 2 tuning trials each) on the
    tiny split: every job is priced, the total is the sum of its parts."""
    args = ["estimate", "--workflow-dir", str(REPO), "--configfile", str(REPO / "config" / "smoke.yaml"),
            "--data", f"tiny={tiny_split_dir}", "--device", "cpu", "--epochs", "1", "--warmup", "0",
            "--gpus", "2", "--json"]
    assert cli(args) == 0
    out = json.loads(capsys.readouterr().out)
    tiny = out["datasets"]["tiny"]
    # 2 x 2 x 2 main runs + beta point (1 seed) + control (2 seeds) + 2 methods x 2 trials
    assert tiny["jobs"] == 8 + 1 + 2 + 4
    assert tiny["epochs"] == 11 * 12 + 4 * 4
    assert out["device_hours"] == pytest.approx(tiny["device_hours"]) and out["device_hours"] > 0
    assert set(out["timings"]) == {"tiny/onebp", "tiny/twobp"}
    assert cli(args[:-1]) == 0  # the table form
    text = capsys.readouterr().out
    assert "Device-hours" in text and "Wall time on 2 device(s)" in text


def test_estimate_cache_is_reused(tiny_split_dir, tmp_path, capsys):
    args = ["estimate", "--workflow-dir", str(REPO), "--configfile", str(REPO / "config" / "smoke.yaml"),
            "--data", f"tiny={tiny_split_dir}", "--device", "cpu", "--epochs", "1", "--warmup", "0", "--json",
            "--cache", str(tmp_path / "timings.json")]
    assert cli(args) == 0
    first = json.loads(capsys.readouterr().out)
    cache = json.loads((tmp_path / "timings.json").read_text())
    assert len(cache) == 2 and all(k.startswith("tiny/") for k in cache)
    assert cli(args) == 0
    again = capsys.readouterr()
    assert json.loads(again.out)["timings"] == first["timings"]  # nothing re-timed
    assert again.err.count("from ") == 2


def test_ease_is_refused_before_allocating(tiny_split_dir, monkeypatch):
    from onebp.config import resolve_config
    from onebp.data.split_format import load_split
    from onebp.methods.one_shot import check_ease_fits, ease_memory_bytes
    from onebp.methods.registry import get_method
    from onebp.training.trainer import Trainer

    assert ease_memory_bytes(40981) / 2**30 == pytest.approx(43.8, abs=0.1)  # Gowalla: 28 bytes per entry
    with pytest.raises(UserError, match=r"ease: 40981 items need about 43.8 GiB.*method_resources.ease"):
        check_ease_fits(40981, 16000 * 2**20, "its jobs' configured memory (mem_mb 16000)")
    split = load_split(tiny_split_dir)
    m = get_method("ease")
    cfg = resolve_config(m.name, m.params, m.defaults, split.name, {"device": "cpu"})
    monkeypatch.setenv("ONEBP_MEMORY_MB", "0.1")  # 104,857 bytes < 28 x 80^2
    with pytest.raises(UserError, match=r"ease: 80 items need .*mem_mb 0.1"):
        Trainer(m, cfg, split, log=lambda msg: None)
    monkeypatch.setenv("ONEBP_MEMORY_MB", "1")
    Trainer(m, cfg, split, log=lambda msg: None)  # fits: builds
