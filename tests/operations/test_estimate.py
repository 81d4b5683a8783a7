"""`onebp estimate`: the arithmetic, a tiny study priced job by job, the timing cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from onebp.cli import main as cli
from onebp.operations import estimate as est

REPO = Path(__file__).resolve().parent.parent.parent


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
