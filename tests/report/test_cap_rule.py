"""The cap-bound rule (onebp.report.epoch_cap.CAP_RULE) on synthetic validation curves, on run
directories, in collect's per-run columns, in the report's cap table and in the tuning table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from onebp.report.collect import collect
from onebp.report.epoch_cap import cap_check, cap_frame, epoch_cap_table, run_cap, window_trend

CAP = 200


def _curve(values: np.ndarray, every: int = 5) -> pd.DataFrame:
    return pd.DataFrame({"epoch": np.arange(every, every * len(values) + 1, every), "value": values})


def _shape(kind: str, every: int = 5, noise: float = 0.0) -> pd.DataFrame:
    """``noise``: an evaluation-to-evaluation zig-zag of that size (deterministic, so a plateau does
    not pass the trend test by chance; the chance rate is tested on its own below)."""
    e = np.arange(every, CAP + 1, every, dtype=float)
    v = {"rising": 0.4 * (1 - np.exp(-e / 300.0)),     # still climbing at the cap
         "plateau": 0.4 * (1 - np.exp(-e / 15.0))}[kind]  # flat long before the cap
    return _curve(v + noise * np.where(np.arange(len(e)) % 2 == 0, 1.0, -1.0), every)


def test_window_trend_hand_worked() -> None:
    e = np.arange(5, CAP + 1, 5, dtype=float)
    gain, noise, n = window_trend(e, 1e-4 * e, CAP)
    # window (160, 200]: epochs 165..200, 8 evaluations; slope 1e-4 × window 40 epochs = 0.004, exact line
    assert n == 8 and gain == pytest.approx(0.004) and noise == pytest.approx(0.0, abs=1e-12)
    # ± 0.001 around the line in a pattern orthogonal to a constant and to the epoch over the window's
    # 8 points, so the fit keeps slope 1e-4 and its residuals are exactly ± 0.001: noise = sqrt(8e-6 / 6)
    v = 1e-4 * e
    v[-8:] += 1e-3 * np.array([1, -1, -1, 1, 1, -1, -1, 1])
    gain, noise, _ = window_trend(e, v, CAP)
    assert gain == pytest.approx(0.004) and noise == pytest.approx(1e-3 * math.sqrt(8 / 6))


def test_rising_curve_is_cap_bound_even_when_its_best_came_before_the_window() -> None:
    c = _shape("rising")
    # (b) alone: a selected epoch of 150 (say a lucky spike) does not settle (a), the trend does
    chk = cap_check(150, CAP, False, c)
    assert chk.bound is True and "rising" in chk.why and chk.gain > chk.noise
    assert cap_check(200, CAP, False, c).bound is True  # (a)


def test_plateaued_curve_is_not_cap_bound() -> None:
    chk = cap_check(120, CAP, False, _shape("plateau", noise=0.002))
    assert chk.bound is False and chk.n_window == 8
    # an exactly flat curve: gain and noise both ~0 -> no rise
    flat = _curve(np.full(40, 0.4))
    assert cap_check(100, CAP, False, flat).bound is False


def test_noisy_rise_counts_only_beyond_its_own_noise() -> None:
    e = np.arange(5, CAP + 1, 5, dtype=float)
    rise = 2e-5 * e  # 0.0008 over the 40-epoch window
    quiet = _curve(rise + np.random.default_rng(1).normal(0, 1e-5, len(e)))
    loud = _curve(rise + np.random.default_rng(1).normal(0, 5e-3, len(e)))
    assert cap_check(100, CAP, False, quiet).bound is True
    assert cap_check(100, CAP, False, loud).bound is False


def test_stopped_early_never_cap_bound() -> None:
    chk = cap_check(200, CAP, True, _shape("rising"))
    assert chk.bound is False and chk.why == "stopped early"


def test_too_few_evaluations_leave_the_trend_untested() -> None:
    e20 = _shape("rising", every=20)  # window (160, 200]: epochs 180, 200 -> 2 evaluations
    chk = cap_check(140, CAP, False, e20)
    assert chk.bound is False and chk.n_window == 2 and math.isnan(chk.gain) and "not tested" in chk.why
    assert cap_check(200, CAP, False, e20).bound is True  # (a) still applies


def test_unknown_when_it_cannot_be_decided() -> None:
    assert cap_check(100, CAP, False, None).bound is None  # no curve, (a) false
    assert cap_check(190, CAP, False, None).bound is True  # no curve, (a) true
    assert cap_check(CAP, CAP, False, _shape("plateau"), has_valid=False).bound is None  # protocol paper
    assert cap_check(0, 0, False, None).bound is False  # EASE: trains no epochs


def test_flat_noisy_curves_pass_the_trend_test_at_the_documented_rate() -> None:
    """The docstring's chance rates: about 20 % with 8 evaluations in the window, 4 % with 40."""
    rng = np.random.default_rng(0)
    for every, lo, hi in ((5, 0.15, 0.27), (1, 0.02, 0.07)):
        e = np.arange(every, CAP + 1, every, dtype=float)
        hits = [np.greater(*window_trend(e, 0.4 + rng.normal(0, 0.003, len(e)), CAP)[:2]) for _ in range(1500)]
        assert lo < np.mean(hits) < hi


def _run(root: Path, name: str, curve: pd.DataFrame | None, selected: int, stopped: bool = False,
         epochs: int | None = CAP, protocol: str = "clean", method: str = "onebp", seed: int = 0) -> Path:
    d = root / "runs" / "toy" / method / f"main-0000000{seed}" / protocol / f"seed{seed}"
    d = root / name / d.relative_to(root) if name else d
    d.mkdir(parents=True)
    epochs_run = int(curve["epoch"].max()) if curve is not None else (epochs or 0)
    (d / "metrics.json").write_text(json.dumps({
        "method": method, "dataset": "toy", "seed": seed, "protocol": protocol, "selected_epoch": selected,
        "epochs_run": epochs_run, "stopped_early": stopped, "valid": {"ndcg@20": 0.4}, "test": {"ndcg@20": 0.4}}))
    cfg = {"select_metric": "ndcg@20", "eval_every": 5, "protocol": protocol}
    if epochs is not None:
        cfg["epochs"] = epochs
    (d / "config.json").write_text(json.dumps(cfg))
    if curve is not None:
        curve.rename(columns={"value": "valid/ndcg@20"}).assign(loss=0.1).to_csv(d / "curve.csv", index=False)
    return d


def test_run_cap_and_collect_columns(tmp_path: Path) -> None:
    rising = _run(tmp_path, "a", _shape("rising"), 150)
    plateau = _run(tmp_path, "b", _shape("plateau", noise=0.002), 120)
    assert run_cap(rising).bound is True and run_cap(plateau).bound is False
    df, _ = collect([rising, plateau])
    train = df[df["split"] == "train"].pivot_table(index="run_dir", columns="metric", values="value")
    assert set(train.columns) >= {"epochs_cap", "cap_bound", "cap_gain", "cap_noise"}
    assert train.loc[str(rising), "cap_bound"] == 1.0 and train.loc[str(plateau), "cap_bound"] == 0.0
    assert (train["epochs_cap"] == CAP).all()
    # the cap falls back to epochs_run when config.json has no epochs (a run early stopping did not end)
    nocfg = _run(tmp_path, "c", _shape("plateau"), 190, epochs=None)
    assert run_cap(nocfg).cap == CAP and run_cap(nocfg).bound is True


def test_cap_frame_on_an_old_table_and_a_missing_curve(tmp_path: Path) -> None:
    rising = _run(tmp_path, "a", _shape("rising"), 150)
    gone = _run(tmp_path, "b", None, 120)  # no curve.csv (a frozen reference keeps none)
    df, _ = collect([rising, gone])
    old = df[~df["metric"].isin(["epochs_cap", "cap_bound", "cap_gain", "cap_noise"])]  # before this rule
    for table in (df, old):
        caps = cap_frame(table).set_index("run_dir")
        assert caps.loc[str(rising), "cap_bound"] is True
        assert caps.loc[str(gone), "cap_bound"] is None


def test_epoch_cap_table_uses_the_rule(tmp_path: Path) -> None:
    """The old table counted only runs whose best came at the very last evaluation; a run selected at
    181 of 200 (OneBP's median in the 200-epoch ML-100K study) was not counted. Now it is."""
    dirs = [_run(tmp_path, "", _shape("rising"), 181, seed=s) for s in range(3)]
    dirs += [_run(tmp_path, "", _shape("plateau"), 60, stopped=True, method="twobp", seed=s) for s in range(2)]
    dirs += [_run(tmp_path, "", None, 50, method="slow", seed=0)]
    t = epoch_cap_table(collect(dirs)[0])
    n = t.numbers.set_index("method")
    assert n.loc["onebp", "cap_bound"] == 3 and n.loc["onebp", "state"] == "bound"
    assert n.loc["twobp", "cap_bound"] == 0 and n.loc["twobp", "stopped_early"] == 2
    assert n.loc["slow", "cap_unknown"] == 1 and n.loc["slow", "state"] == "unknown"
    cells = t.cells.set_index("method")["cap-bound"]
    assert cells["onebp"] == "3/3" and cells["slow"] == "0/1 (1 cap: unknown)"
    assert "last 20%" in t.caption and "gain > noise" in t.caption


def test_tuning_table_marks_a_cap_bound_choice(tmp_path: Path) -> None:
    from onebp.report.tuning_table import load_best, tuning_table

    budget = {"n_trials": 2, "max_epochs": CAP, "eval_every": 5, "patience_epochs": 200, "sampler": "qmc", "seed": 0}
    common = {"dataset": "toy", "n_trials": 2, "n_failed": 0, "select_metric": "ndcg@20", "default_value": 0.2,
              "budget": budget, "params": {"lr": 1e-3}, "valid_value": 0.25}
    records = [{**common, "method": "near-cap", "trial": 1, "selected_epoch": 170,  # (a): 170 > 160
                "stopped_early": False},
               # early stopping not recorded: patience 200 cannot run out before the cap after epoch 170;
               # patience 20 could have (170 + 20 <= 200)
               {**common, "method": "near-cap?", "trial": 1, "selected_epoch": 170},
               {**common, "method": "near-cap??", "trial": 1, "selected_epoch": 170,
                "budget": {**budget, "patience_epochs": 20}},
               {**common, "method": "early", "trial": 0, "selected_epoch": 90, "stopped_early": True},
               {**common, "method": "nocurve", "trial": 0, "selected_epoch": 90},
               {**common, "method": "ease", "trial": 0, "selected_epoch": 0, "epochs_run": 0}]
    cells = tuning_table(records).cells.set_index("method")["selected epoch"]
    assert cells["near-cap"] == "170 (cap-bound)" and cells["early"] == "90"
    assert cells["near-cap?"] == "170 (cap-bound)" and cells["near-cap??"] == "170 (cap: unknown)"
    assert cells["nocurve"] == "90 (cap: unknown)" and cells["ease"] == "0"
    # load_best finds the chosen trial's curve under trials/ and its early stopping in trials.csv
    tdir = tmp_path / "toy" / "rising"
    trial = _run(tdir / "trials", "", _shape("rising"), 150)
    trial_dir = tdir / "trials" / "trial01-abc"
    trial.rename(trial_dir)
    (tdir / "best.json").write_text(json.dumps({**common, "method": "rising", "trial": 1, "selected_epoch": 150,
                                                "run_dir": "results/tuning/toy/rising/trials/trial01-abc"}))
    pd.DataFrame({"trial": [0, 1], "status": ["ok", "ok"], "stopped_early": [False, False],
                  "epochs_run": [CAP, CAP]}).to_csv(tdir / "trials.csv", index=False)
    rec = load_best(tdir / "best.json")
    assert rec["trial_dir"] == str(trial_dir) and rec["stopped_early"] is False
    assert tuning_table([rec]).cells["selected epoch"].iloc[0] == "150 (cap-bound)"  # (b): still rising
    # a trials.csv that does not say whether the chosen trial stopped early: not read as "it did not"
    pd.DataFrame({"trial": [0, 1], "status": ["ok", "ok"], "stopped_early": [False, None],
                  "epochs_run": [CAP, CAP]}).to_csv(tdir / "trials.csv", index=False)
    (trial_dir / "metrics.json").unlink()  # nor can the run's own record say
    (tdir / "best.json").write_text(json.dumps({**json.loads((tdir / "best.json").read_text()),
                                                "budget": {**budget, "patience_epochs": 20}}))
    rec = load_best(tdir / "best.json")
    assert "stopped_early" not in rec
    assert tuning_table([rec]).cells["selected epoch"].iloc[0] == "150 (cap: unknown)"


def test_a_curve_without_validation_values_is_no_curve(tmp_path: Path) -> None:
    """A header-only curve.csv or an all-empty validation column gives no evidence of a trend: the run
    is unknown, as with no curve.csv, not "0 evaluations in the window" and so free."""
    header = _run(tmp_path, "h", _shape("rising"), 100)
    (header / "curve.csv").write_text("epoch,valid/ndcg@20,loss\n")
    empty = _run(tmp_path, "n", _shape("rising"), 100)
    pd.read_csv(empty / "curve.csv").assign(**{"valid/ndcg@20": np.nan}).to_csv(empty / "curve.csv", index=False)
    for d in (header, empty):
        chk = run_cap(d)
        assert chk.bound is None and chk.why == "no validation values in curve.csv"
    assert cap_check(100, CAP, False, _curve(np.full(40, np.nan))).bound is None
    assert cap_check(190, CAP, False, _curve(np.full(40, np.nan))).bound is True  # (a) still settles it


def test_without_a_selected_epoch_only_a_rise_settles_it(tmp_path: Path) -> None:
    """(a) needs the selected epoch; without one, a run (b) does not make cap-bound — too few
    evaluations in the window, or no rise — is unknown: a peak inside the window is not ruled out."""
    one = _curve(np.array([0.4]), every=CAP)  # eval_every = cap: one evaluation in all
    chk = cap_check(math.nan, CAP, False, one)
    assert chk.bound is None and chk.n_window == 1 and "no selected epoch" in chk.why
    assert cap_check(math.nan, CAP, False, _shape("plateau", noise=0.002)).bound is None
    assert cap_check(math.nan, CAP, False, _shape("rising")).bound is True  # (b) fires
    # with a selected epoch the short curve is judged on (a) alone, as before: free below the window
    assert cap_check(100, CAP, False, one).bound is False and cap_check(170, CAP, False, one).bound is True
    d = _run(tmp_path, "e", one, 0)
    m = json.loads((d / "metrics.json").read_text())
    del m["selected_epoch"]
    (d / "metrics.json").write_text(json.dumps(m))
    assert run_cap(d).bound is None


def test_an_unknown_cap_is_unknown_not_trains_no_epochs(tmp_path: Path) -> None:
    chk = cap_check(100, math.nan, False, None)
    assert chk.bound is None and math.isnan(chk.cap) and "cap unknown" in chk.why
    assert cap_check(100, math.nan, True, None).bound is False  # stopped early: free whatever the cap
    assert cap_check(0, 0, False, None).why == "trains no epochs"  # EASE keeps its verdict
    # an old table whose run directory is gone and that has no epochs_run row
    df, _ = collect([_run(tmp_path, "a", _shape("rising"), 150)])
    old = df[~df["metric"].isin(["epochs_cap", "cap_bound", "cap_gain", "cap_noise", "epochs_run"])]
    caps = cap_frame(old.assign(run_dir=str(tmp_path / "gone")))
    assert caps["cap_bound"].iloc[0] is None and math.isnan(caps["epochs_cap"].iloc[0])


def test_a_missing_stopped_early_row_is_not_read_as_stopped(tmp_path: Path) -> None:
    """An old table where one run lacks its stopped_early row: the pivot gives NaN, which must not read
    as "stopped early" (free). The run's metrics.json settles it when on disk; else it is unknown —
    unless (a) and (b) leave it free, which it is whether or not early stopping ended it."""
    runs = [_run(tmp_path, f"s{s}", _shape("rising"), 150, seed=s) for s in (1, 2)]
    flat = _run(tmp_path, "f", _shape("plateau", noise=0.002), 120, seed=3)
    df, _ = collect([*runs, flat])
    old = df[~df["metric"].isin(["epochs_cap", "cap_bound", "cap_gain", "cap_noise"])]
    old = old[~((old["metric"] == "stopped_early") & old["run_dir"].isin([str(runs[1]), str(flat)]))]
    caps = cap_frame(old).set_index("seed")["cap_bound"]
    assert caps.sort_index().tolist() == [True, True, False]  # read from metrics.json
    for d in (runs[1], flat):
        (d / "metrics.json").unlink()
    caps = cap_frame(old).set_index("seed")
    assert caps.loc[2, "cap_bound"] is None and "early stopping not recorded" in caps.loc[2, "why"]
    assert caps.loc[3, "cap_bound"] is False
    assert cap_check(190, CAP, None, None).bound is None and cap_check(100, CAP, None, _shape("plateau", noise=0.002)).bound is False
