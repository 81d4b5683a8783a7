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


def _smoke_plan():
    config = est.load_config(REPO, [str(REPO / "config" / "smoke.yaml")])
    return est.build_plan(REPO, config)


def test_remaining_skips_finished_jobs_and_counts_interrupted_ones_from_their_last_epoch(tmp_path):
    """A study's working directory with one finished run (metrics.json: 8 of its 12 epochs, stopped
    early), one interrupted at epoch 4 (its curve) and one finished trial: those jobs are priced by what
    is left of them, everything else in full."""
    plan = _smoke_plan()
    timings = {("tiny", "onebp"): est.Timing(epoch_s=1.0, eval_s=0.0, dim=16, negatives=1),
               ("tiny", "twobp"): est.Timing(epoch_s=1.0, eval_s=0.0, dim=16, negatives=1)}
    full = est.study_costs(plan, timings)["tiny"]
    finished, interrupted = plan.runs[0].run_dir, plan.runs[1].run_dir
    trial_id = plan.tuning.methods[("tiny", "onebp")].trials[0][0]
    trial = f"{plan.tuning.directory('tiny', 'onebp')}/trials/{trial_id}"
    for run_dir, epochs_run in ((finished, 8), (trial, 4)):
        (tmp_path / run_dir).mkdir(parents=True)
        (tmp_path / run_dir / "metrics.json").write_text(json.dumps({"epochs_run": epochs_run}))
    (tmp_path / interrupted).mkdir(parents=True)
    (tmp_path / interrupted / "config.json").write_text(json.dumps({"epochs": 12}))
    (tmp_path / interrupted / "curve.csv").write_text("epoch,seconds_train\n2,1.0\n4,1.0\n5,1.")  # a torn last line

    per_method: dict = {}
    left = est.study_costs(plan, timings, done_root=tmp_path, per_method=per_method)["tiny"]
    assert (left.finished, left.finished_epochs, left.finished_caps) == (2, 8 + 4, 12 + 4)
    # the per-method split adds up to the dataset's, and puts each finished job under its method
    assert set(per_method) == {("tiny", "onebp"), ("tiny", "twobp")}
    assert sum(c.jobs for c in per_method.values()) == left.jobs
    assert sum(c.epochs for c in per_method.values()) == left.epochs
    expected = {"onebp": 1, "twobp": 0}  # the finished trial is onebp's
    expected[plan.runs[0].method] += 1
    assert {m: c.finished for (_, m), c in per_method.items()} == expected
    assert left.jobs == full.jobs - 2
    assert left.epochs == full.epochs - 12 - 4 - 5  # two finished jobs whole, the interrupted run's 5 epochs
    text = est.render({"tiny": left}, 1, "cpu", timings, remaining_in=tmp_path, per_method=per_method)
    assert "Left of the study in" in text and "ran 12 of their caps' 16 epochs (75 %)" in text
    assert f"that share of the above: {0.75 * left.seconds / 3600:.3g} device-hours" in text
    by_method = text.split("By method")[1].splitlines()
    assert "| dataset   | method   |   finished |   jobs left |   epochs left |   device-hours left |" in by_method


def test_remaining_refuses_a_damaged_run_and_a_workdir_where_nothing_ran(tmp_path, tiny_split_dir, capsys):
    plan = _smoke_plan()
    timings = {("tiny", m): est.Timing(epoch_s=1.0, eval_s=0.0) for m in ("onebp", "twobp")}
    run_dir = tmp_path / plan.runs[0].run_dir
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text("{not json")
    with pytest.raises(est.UserError, match=rf"{plan.runs[0].run_dir}: config.json is not JSON"):
        est.study_costs(plan, timings, done_root=tmp_path)
    # a workdir without results/: every job would be priced as left, which is what plain estimate says
    args = ["estimate", "--workflow-dir", str(REPO), "--configfile", str(REPO / "config" / "smoke.yaml"),
            "--data", f"tiny={tiny_split_dir}", "--device", "cpu", "--workdir", str(tmp_path / "elsewhere"),
            "--remaining"]
    assert cli(args) != 0
    assert "--remaining: " in capsys.readouterr().err


def _finished_job(run_dir: Path, dim: int, negatives: int, seconds_train: list[float], seconds_eval: list[float]) -> None:
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"epochs": 12, "eval_every": 2, "dim": dim,
                                                     "n_negatives": negatives}))
    rows = ["epoch,seconds_train,seconds_eval"]
    for epoch, s in enumerate(seconds_train, 1):
        rows.append(f"{epoch},{s},{seconds_eval[(epoch - 1) // 2] if epoch % 2 == 0 else ''}")
    (run_dir / "curve.csv").write_text("\n".join(rows) + "\n")
    (run_dir / "metrics.json").write_text(json.dumps({"epochs_run": len(seconds_train)}))


def test_remaining_prices_a_method_at_its_finished_jobs_own_pace(tmp_path, tiny_split_dir, capsys):
    """With --remaining, a (dataset, method) whose jobs have finished is priced at the median of their
    own seconds per epoch and per evaluation (what the study's load really gave), not timed again; a
    sweep point at another dim does not count; a method with nothing finished is timed as before."""
    plan = _smoke_plan()
    main_run = next(r for r in plan.runs if r.method == "onebp" and r.setting.startswith("main"))
    res = plan.resolved("tiny", "onebp", main_run.setting)
    trial_id = plan.tuning.methods[("tiny", "onebp")].trials[0][0]
    trial = f"{plan.tuning.directory('tiny', 'onebp')}/trials/{trial_id}"
    _finished_job(tmp_path / main_run.run_dir, res["dim"], res["n_negatives"], [9.0, 1.0, 1.0, 1.0], [0.2, 0.4])
    _finished_job(tmp_path / trial, res["dim"], res["n_negatives"], [3.0, 3.0, 3.0, 3.0], [0.6, 0.6])
    _finished_job(tmp_path / main_run.run_dir.replace(main_run.setting, "dim=64-x"), 4 * res["dim"],
                  res["n_negatives"], [50.0] * 4, [5.0, 5.0])
    running = next(r for r in plan.runs if r.method == "onebp" and r.run_dir != main_run.run_dir)
    _finished_job(tmp_path / running.run_dir, res["dim"], res["n_negatives"], [100.0] * 4, [9.0, 9.0])
    (tmp_path / running.run_dir / "metrics.json").unlink()  # still training: its pace is not counted
    observed = est.observed_timings(plan, tmp_path)
    assert set(observed) == {("tiny", "onebp")}
    t = observed[("tiny", "onebp")]
    # per job: the median of its epochs (1.0 and 3.0; the warm-up 9.0 is one row of four), then the median
    assert (t.epoch_s, t.eval_s) == (pytest.approx(2.0), pytest.approx(0.45))
    assert (t.dim, t.negatives, t.observed) == (res["dim"], res["n_negatives"], 2)
    assert t.source == "the study's 2 finished jobs"

    args = ["estimate", "--workflow-dir", str(REPO), "--configfile", str(REPO / "config" / "smoke.yaml"),
            "--data", f"tiny={tiny_split_dir}", "--device", "cpu", "--workdir", str(tmp_path), "--remaining",
            "--json", "--epochs", "1", "--warmup", "0"]
    assert cli(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["timings"]["tiny/onebp"]["source"] == "the study's 2 finished jobs"
    assert out["timings"]["tiny/onebp"]["epoch_s"] == pytest.approx(2.0)
    assert out["timings"]["tiny/twobp"]["source"] == "measured"
    # an observed pace is not a timing "not measured as configured"
    assert not any("finished jobs" in n for n in out["datasets"]["tiny"]["notes"])
