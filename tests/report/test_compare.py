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
