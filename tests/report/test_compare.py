"""``onebp report compare``: a check that guards results must fail when it should (issue 16)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from onebp.errors import UserError
from onebp.report import cli
from onebp.report import compare as cmp

SEEDS = (0, 1, 2, 3, 4)


def _table(values: dict[tuple[str, str, int], list[float]], splits: tuple[str, ...] = ("test",)) -> pd.DataFrame:
    """A long results table: per (method, metric, k) one value per seed, repeated for each split."""
    rows = []
    for split in splits:
        for (method, metric, k), per_seed in values.items():
            for seed, v in zip(SEEDS, per_seed, strict=True):
                rows.append({"dataset": "toy", "method": method, "setting": "main-0000abcd", "seed": seed,
                             "protocol": "clean", "split": split, "metric": metric, "k": k, "value": v,
                             "run_dir": f"results/runs/toy/{method}/main-0000abcd/clean/seed{seed}"})
    df = pd.DataFrame(rows)
    df["k"] = df["k"].astype("Int64")
    return df


# onebp's NDCG@20: five seeds spread 0.003 (sd about 0.0013), like the ml-100k reference's cell
TIGHT = {("onebp", "ndcg", 20): [0.4204, 0.4231, 0.4190, 0.4218, 0.4226],
         ("twobp", "ndcg", 20): [0.4101, 0.4119, 0.4085, 0.4122, 0.4093]}


def _write(df: pd.DataFrame, path: Path) -> str:
    df.to_csv(path, index=False)
    return str(path)


def _cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="onebp")
    cli.register(p.add_subparsers())
    args = p.parse_args(argv)
    return args.func(args)


def test_identical_rerun_agrees(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref = _write(_table(TIGHT), tmp_path / "ref.csv")
    assert cmp.run(ref, ref) == 0
    assert "2 of 2 reference cells agree" in capsys.readouterr().out


def test_honest_noise_within_the_spread_agrees() -> None:
    ref = _table(TIGHT)
    rerun = ref.copy()
    rerun["value"] += np.array([0.001, -0.0015, 0.0005, -0.001, 0.0012] * 2)
    assert (cmp.compare(rerun, ref)["status"] == "agree").all()


def test_nan_values_are_a_disagreement_not_agreement(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: NaN Δ > allowance is False, so every NaN cell 'agreed' and the command exited 0."""
    ref = _table(TIGHT)
    rerun = ref.copy()
    rerun["value"] = np.nan
    assert cmp.run(_write(rerun, tmp_path / "rerun.csv"), _write(ref, tmp_path / "ref.csv")) == 1
    out = capsys.readouterr().out
    assert "0 of 2 reference cells agree" in out and "NaN value" in out
    # one NaN seed among five is enough, on either side
    one = ref.copy()
    one.loc[0, "value"] = np.nan
    assert cmp.compare(one, ref).loc[0, "status"] == "NaN value"
    assert cmp.compare(ref, one).loc[0, "status"] == "NaN value"


def test_one_diverged_seed_is_flagged() -> None:
    """Before: the +0.03 seed widened the rerun's own std, so SE_diff grew and the cell 'agreed'."""
    ref = _table(TIGHT)
    rerun = ref.copy()
    rerun.loc[(rerun["method"] == "onebp") & (rerun["seed"] == 0), "value"] += 0.03
    m = cmp.compare(rerun, ref).set_index("method")
    assert m.loc["onebp", "status"] == "disagree" and "seed" in m.loc["onebp", "why"]
    assert m.loc["twobp", "status"] == "agree"


def test_allowance_uses_the_reference_spread_only() -> None:
    ref = _table(TIGHT)
    wide = ref.copy()  # same mean, far wider spread on the rerun's side
    wide["value"] += np.array([0.02, -0.02, 0.02, -0.02, 0.0] * 2)
    m = cmp.compare(wide, ref)
    assert (m["status"] == "disagree").all()
    assert np.allclose(m["allowed"], cmp.K_SIGMA * m["sigma"] * np.sqrt(1 / 5 + 1 / 5) + cmp.TOL)


def test_one_seed_reference_cell_borrows_the_pooled_reference_spread() -> None:
    ref = _table(TIGHT)
    single = ref[~((ref["method"] == "twobp") & (ref["seed"] > 0))]
    m = cmp.compare(single, single).set_index("method")
    assert m.loc["twobp", "sigma"] == pytest.approx(m.loc["onebp", "std_ref"])  # the only other std


def test_unknown_split_is_refused(tmp_path: Path) -> None:
    """Before: `--splits tset` selected nothing and printed '0 of 0 ... matches', exit 0."""
    ref = _write(_table(TIGHT), tmp_path / "ref.csv")
    with pytest.raises(UserError, match="unknown split 'tset'"):
        _cli(["report", "compare", ref, ref, "--splits", "tset"])


def test_reference_without_the_split_is_refused(tmp_path: Path) -> None:
    """Before: a reference without test rows compared nothing and 'matched'."""
    ref = _write(_table(TIGHT, splits=("valid",)), tmp_path / "ref.csv")
    with pytest.raises(UserError, match=r"ref\.csv: no rows of split 'test', 'best_on_test'"):
        cmp.run(ref, ref)
    only_test = _write(_table(TIGHT), tmp_path / "only_test.csv")
    assert cmp.run(only_test, only_test) == 0  # of the default splits one is enough
    with pytest.raises(UserError, match="no rows of split 'best_on_test'"):
        _cli(["report", "compare", only_test, only_test, "--splits", "test,best_on_test"])


def test_zero_reference_cells_fail(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                   tmp_path: Path) -> None:
    """Before: '0 of 0 reference cells agree ... matches', exit 0."""
    ref = _write(_table(TIGHT), tmp_path / "ref.csv")
    real = cmp.compare
    monkeypatch.setattr(cmp, "compare", lambda *a, **k: real(*a, **k).iloc[:0])
    assert cmp.run(ref, ref) == 1
    assert "nothing was checked" in capsys.readouterr().out


def test_a_missing_reference_cell_disagrees() -> None:
    ref = _table(TIGHT)
    rerun = ref[ref["method"] == "onebp"]
    assert set(cmp.compare(rerun, ref)["status"]) == {"agree", "missing in rerun"}


@pytest.mark.parametrize("text, match", [
    ("", "empty"),
    ('dataset,method\n"toy\n', "not a results table"),
    ("a,b\n1,2\n", "no column"),
])
def test_empty_or_malformed_csv_is_one_line(tmp_path: Path, text: str, match: str) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(text)
    ref = _write(_table(TIGHT), tmp_path / "ref.csv")
    for argv in ([str(bad), ref], [ref, str(bad)]):
        with pytest.raises(UserError, match=match) as err:
            _cli(["report", "compare", *argv])
        assert "bad.csv" in str(err.value) and "\n" not in str(err.value)


def test_non_numeric_value_names_the_row(tmp_path: Path) -> None:
    df = _table(TIGHT)
    df["value"] = df["value"].astype(object)
    df.loc[3, "value"] = "oops"
    with pytest.raises(UserError, match=r"bad\.csv:5: value 'oops' is not a number"):
        cmp.run(_write(df, tmp_path / "bad.csv"), _write(_table(TIGHT), tmp_path / "ref.csv"))


def test_cli_defaults_and_help_state_the_rule() -> None:
    p = argparse.ArgumentParser(prog="onebp")
    cli.register(p.add_subparsers())
    args = p.parse_args(["report", "compare", "a.csv", "b.csv"])
    assert (args.k_sigma, args.tol, args.k_seed, args.floor) == (cmp.K_SIGMA, cmp.TOL, cmp.K_SEED, cmp.FLOOR)
    for piece in ("K_SEED", "FLOOR", "reference", "NaN", "false alarm"):
        assert piece in cli.COMPARE_RULE


def test_claims_on_an_empty_csv_is_one_line(tmp_path: Path) -> None:
    """The guard is in the shared reader (collect.load_results), so `report claims` gets it too."""
    empty = tmp_path / "results.csv"
    empty.write_text("")
    with pytest.raises(UserError, match=r"results\.csv: empty, not a results table"):
        _cli(["report", "claims", "--results", str(empty), "--out", str(tmp_path / "REPORT.md")])
    assert not (tmp_path / "REPORT.md").exists()


# -- seeds are matched, not counted (audit: a rerun lacking seeds, or one seed repeated, passed) ---------

#: a deterministic method (EASE, MostPop): the same value for every seed, a row per seed all the same
WITH_EASE = {**TIGHT, ("ease", "ndcg", 20): [0.4050] * 5}


def test_a_rerun_lacking_seeds_misses_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: cells() counted rows, so seed 0 alone — equal to the mean of a deterministic method —
    'agreed', and the command printed 'the rerun matches the reference' (exit 0)."""
    ref = _table(WITH_EASE)
    assert (cmp.compare(ref, ref)["status"] == "agree").all()  # a deterministic method matches seed by seed
    rerun = ref[ref["seed"] == 0]
    m = cmp.compare(rerun, ref).set_index("method")
    assert (m["status"] == "missing in rerun").all()
    assert m.loc["ease", "why"] == "seeds 1, 2, 3, 4 missing"
    assert cmp.run(_write(rerun, tmp_path / "rerun.csv"), _write(ref, tmp_path / "ref.csv")) == 1
    out = capsys.readouterr().out
    assert "missing in rerun (seeds 1, 2, 3, 4 missing)" in out and "does NOT match" in out
    # one seed of one cell lacking is enough; seeds only the rerun has are compared, not missing
    one = ref.drop(index=ref.index[(ref["method"] == "twobp") & (ref["seed"] == 3)])
    m = cmp.compare(one, ref).set_index("method")
    assert m.loc["twobp", "status"] == "missing in rerun" and m.loc["twobp", "why"] == "seed 3 missing"
    assert (m.drop(index="twobp")["status"] == "agree").all()
    assert (cmp.compare(ref, one)["status"] == "agree").all()


def test_rows_with_an_empty_key_do_not_stand_in_for_their_seeds(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Before: seed 1's rows, their dataset field empty, were set aside as cells only in the rerun and
    the four other seeds 'matched' (exit 0)."""
    ref = _table(TIGHT)
    rerun = ref.copy()
    rerun.loc[rerun["seed"] == 1, "dataset"] = np.nan
    assert cmp.run(_write(rerun, tmp_path / "rerun.csv"), _write(ref, tmp_path / "ref.csv")) == 1
    out = capsys.readouterr().out
    assert out.count("missing in rerun (seed 1 missing)") == 2 and "2 cells only in the rerun" in out


@pytest.mark.parametrize("side", ["rerun", "ref"])
def test_a_seed_twice_is_refused(tmp_path: Path, side: str) -> None:
    """Before: seed 0's rows five times read as five seeds, '(5)', and matched (exit 0)."""
    ref = _table(TIGHT)
    five = pd.concat([ref[ref["seed"] == 0]] * 5, ignore_index=True)
    paths = {"rerun": tmp_path / "rerun.csv", "ref": tmp_path / "ref.csv"}
    _write(ref, paths["rerun"] if side == "ref" else paths["ref"])
    _write(five, paths[side])
    with pytest.raises(UserError, match=rf"{side}\.csv: seed 0 of cell toy/onebp/main/clean/test/ndcg@20 "
                                        r"has 5 rows \(lines 2, 4, 6, 8, \.\.\.\)") as err:
        _cli(["report", "compare", str(paths["rerun"]), str(paths["ref"])])
    assert "\n" not in str(err.value)


def test_two_settings_sharing_a_tag_or_a_seed_not_a_number_are_refused(tmp_path: Path) -> None:
    ref = _table(TIGHT)
    other = ref.assign(setting="main-ffffffff", value=ref["value"] + 0.02)
    with pytest.raises(UserError, match="settings main-0000abcd and main-ffffffff share the tag 'main'"):
        cmp.run(_write(pd.concat([ref, other]), tmp_path / "rerun.csv"), _write(ref, tmp_path / "ref.csv"))
    blank = ref.astype({"seed": object})
    blank.loc[3, "seed"] = None
    with pytest.raises(UserError, match=r"rerun\.csv:5: seed empty is not a whole number"):
        cmp.run(_write(blank, tmp_path / "rerun.csv"), _write(ref, tmp_path / "ref.csv"))


@pytest.mark.parametrize("cut", [",ndcg,2", ",ndcg,20,0.41", ",ndcg,20", ",ndcg,20,1.2e-"])
def test_a_cut_last_row_is_missing_not_an_extra_cell(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     cut: str) -> None:
    """Before: a rerun cut inside its last row's k field ('...,ndcg,2') had a cell ndcg@2 only the
    rerun has (not counted) and ndcg@20 compared on the four other seeds: 'matches', exit 0. Cut
    inside the value, the shortened number (0.41 for 0.4122) was compared as if whole."""
    ref = _table(TIGHT)
    text = ref.to_csv(index=False)
    last = text.rstrip("\n").rsplit("\n", 1)[1]
    assert last.startswith("toy,twobp,main-0000abcd,4,clean,test,ndcg,20,")
    rerun = tmp_path / "rerun.csv"
    rerun.write_text(text[:text.rindex(last)] + last[:last.index(",ndcg,20,")] + cut)
    assert cmp.run(str(rerun), _write(ref, tmp_path / "ref.csv")) == 1
    out = capsys.readouterr().out
    assert "not in reference" not in out and "cells only in the rerun" not in out
    assert "missing in rerun (seed 4 missing)" in out and "rerun.csv:11: the last row is cut short" in out
    # the same file with its last row whole (and its line end) matches
    rerun.write_text(text)
    assert cmp.run(str(rerun), _write(ref, tmp_path / "ref.csv")) == 0


def test_match_seeds_false_compares_values_only() -> None:
    """benchmarks/compare_false_alarms.py compares disjoint halves of a reference's seeds."""
    ref = _table(WITH_EASE)
    first, rest = ref[ref["seed"] < 3], ref[ref["seed"] >= 3]
    assert (cmp.compare(rest, first)["status"] == "missing in rerun").all()
    assert (cmp.compare(rest, first, match_seeds=False)["status"] == "agree").all()


# -- one noisy reference cell must not widen every method's allowance (audit: σ 0.38 let −0.15 pass) ----

def test_one_noisy_reference_cell_does_not_widen_the_others(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Before: the pooled spread was the root mean of all cells' variances, so twobp's seed collapsed
    to 0.0 gave onebp σ ≈ 0.12 and a −0.15 regression of onebp 'agreed' (allowance ≈ 0.38)."""
    ref = _table(WITH_EASE)
    ref.loc[(ref["method"] == "twobp") & (ref["seed"] == 0), "value"] = 0.0
    for method in ("onebp", "ease"):
        rerun = ref.copy()
        rerun.loc[rerun["method"] == method, "value"] -= 0.15
        m = cmp.compare(rerun, ref).set_index("method")
        assert m.loc[method, "status"] == "disagree", m[["delta", "allowed", "status"]]
        assert (m.drop(index=method)["status"] == "agree").all()
    assert cmp.run(_write(rerun, tmp_path / "rerun.csv"), _write(ref, tmp_path / "ref.csv")) == 1
    assert "does NOT match" in capsys.readouterr().out
    scale = cmp.cells(ref).assign(sigma=lambda c: cmp.reference_scale(c)).set_index("method")
    # each cell's std counts into the pool at most POOL_CAP times the group's lower median (onebp's)
    assert scale.loc["onebp", "sigma"] <= cmp.POOL_CAP * scale.loc["onebp", "std"]
    assert scale.loc["ease", "sigma"] == pytest.approx(scale.loc["onebp", "sigma"])  # std 0: left out of the pool
    assert scale.loc["twobp", "sigma"] == scale.loc["twobp", "std"]  # a noisy cell keeps its own spread
