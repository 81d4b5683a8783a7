"""The budget-bound verdict (claims.BUDGET_RULE) and the robustness matrix over several results
sources (onebp.report.robustness, `onebp report claims --results A --results B`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from onebp.cli import main
from onebp.report import claims as C
from onebp.report.collect import collect
from onebp.report.robustness import load_source, matrix_frame, overall, source_claims
from tests.report.test_tables import N_USERS, fake_run, per_user


def test_budget_verdict_cases() -> None:
    bv = C.budget_verdict
    assert bv("supported", "bound", "free", "onebp", "twobp") == "budget-bound (onebp ahead at this cap)"
    assert bv("not supported", "free", "bound", "onebp", "ease") == "budget-bound (ease ahead at this cap)"
    assert bv("inconclusive", "bound", "bound", "a", "b") == "budget-bound (no difference shown at this cap)"
    assert bv("supported", "bound", "unknown", "a", "b").startswith("budget-bound")  # one bound side decides
    assert bv("supported", "free", "unknown", "a", "b") == "supported (cap: unknown)"
    assert bv("not supported", "free", "free", "a", "b") == "not supported"
    assert bv("not run", "bound", "free", "a", "b") == "not run"


def test_side_of_labels() -> None:
    assert C.side_of("onebp (aggregation=none)") == ("onebp", "aggregation=none")
    assert C.side_of("ease") == ("ease", "main")


def test_overall_column_cases() -> None:
    two = [("ml-100k", "supported"), ("ml-1m", "supported")]
    assert overall(two) == "holds everywhere"
    assert overall([("a", "not supported"), ("b", "not supported")]) == "fails everywhere"
    assert overall([("a", "inconclusive"), ("b", "inconclusive")]) == "inconclusive everywhere"
    assert overall([("a", "supported"), ("b", "budget-bound (x ahead at this cap)")]) == "budget-bound somewhere"
    assert overall([("a", "supported"), ("b", "inconclusive")]) == "depends on the dataset"
    # one dataset at two budgets: the budget, not the dataset, changes it
    assert overall([("a", "supported"), ("a", "inconclusive")]) == "depends on the budget (one dataset only)"
    assert overall([("a", "supported"), ("a", "inconclusive"), ("b", "supported")]) \
        == "depends on the dataset and the budget"
    assert overall([("a", "supported"), ("a", "supported")]) == "holds everywhere (one dataset only)"
    assert overall([("a", "supported (cap: unknown)"), ("b", "supported")]) \
        == "holds everywhere (cap: unknown somewhere)"
    assert overall([("a", "not run"), ("b", "supported")]) == "holds everywhere (not run in 1)"
    assert overall([("a", "not run")]) == "not run"


def _capped(run_dir: Path, selected: int = 10) -> Path:
    """Make a fake run one that ran to its cap (10 epochs) and was selected at ``selected``."""
    m = json.loads((run_dir / "metrics.json").read_text())
    m.update(stopped_early=False, selected_epoch=selected, epochs_run=10)
    (run_dir / "metrics.json").write_text(json.dumps(m))
    return run_dir


def _study(root: Path, dataset: str, onebp_shift: float, capped: bool) -> Path:
    """A tiny study: onebp (shifted per user by ``onebp_shift``) vs twobp, 3 seeds, protocol clean;
    onebp cap-bound (selected at its last epoch, not stopped early) when ``capped``."""
    rng = np.random.default_rng(1)
    base = rng.uniform(0.1, 0.5, N_USERS)
    dirs = []
    for seed in range(3):
        noise = rng.normal(0, 0.01, N_USERS)
        a = fake_run(root, dataset, "onebp", seed, per_user(base + noise, onebp_shift))
        dirs.append(_capped(a) if capped else a)
        dirs.append(fake_run(root, dataset, "twobp", seed, per_user(base + noise, 0.0)))
    df, _ = collect(dirs)
    df.to_csv(root / "results.csv", index=False)
    return root / "results.csv"


def test_budget_bound_verdict_in_the_claims_frame(tmp_path: Path) -> None:
    df = pd.read_csv(_study(tmp_path / "s", "toy", 0.05, capped=True))
    f = C.claims_frame(df).set_index(["claim", "metric"])
    r = f.loc[("1a", "ndcg@20")]
    assert r["raw_verdict"] == "supported"  # the statistics are kept
    assert r["verdict"] == "budget-bound (onebp ahead at this cap)"
    assert r["cap_a"] == "3/3" and r["cap_b"] == "0/3"
    free = C.claims_frame(pd.read_csv(_study(tmp_path / "f", "toy", 0.05, capped=False))).set_index(["claim", "metric"])
    assert free.loc[("1a", "ndcg@20"), "verdict"] == "supported"
    # the rendered table shows both verdicts and the cap counts
    text = C.render_claims(f.reset_index()).set_index("claim")
    row = text.loc[text.index.str.startswith("1a")].iloc[0]
    assert row["raw verdict"] == "supported" and row["cap-bound (A; B)"] == "3/3; 0/3"


def test_matrix_from_two_tiny_results_tables(tmp_path: Path) -> None:
    a = _study(tmp_path / "ml-small", "small", 0.05, capped=False)  # supported, free
    b = _study(tmp_path / "ml-big", "big", 0.05, capped=True)  # supported, onebp cap-bound
    frames = [(lbl, source_claims(load_source(p)), {}) for lbl, p in (("ml-small", a), ("ml-big", b))]
    m, cols = matrix_frame(frames)
    assert cols == ["small, cap ? (ml-small)", "big, cap ? (ml-big)"]
    r = m.set_index(["claim", "metric"]).loc[("1a", "ndcg@20")]
    assert r[cols[0]] == "supported" and r[cols[1]].startswith("budget-bound (onebp ahead")
    assert r["overall"] == "budget-bound somewhere (raw: holds everywhere)"
    assert r[f"{cols[0]} effect"].startswith("Δ +0.05")
    # the CLI: labels from the folder names, the command on top, the matrix in REPORT.md too
    out, page = tmp_path / "out" / "REPORT.md", tmp_path / "out" / "ROBUSTNESS.md"
    assert main(["report", "claims", "--results", str(a.parent), "--results", str(b), "--out", str(out),
                 "--matrix", str(page)]) == 0
    text = page.read_text()
    assert text.index("onebp report claims --results") < text.index("## Robustness")
    assert "small, cap 10 (ml-small)" in text and "big, cap 10 (ml-big)" in text  # caps from the runs
    assert "budget-bound somewhere (raw: holds everywhere) |" in text and "(one dataset only) |" not in text
    rep = out.read_text()
    assert rep.index("## Robustness") < rep.index("## ml-small: the claims")
    assert "## ml-big: the claims" in rep and "Runs the epoch cap bound" in rep


def test_same_dataset_two_budgets_says_so(tmp_path: Path) -> None:
    a = _study(tmp_path / "cap200", "toy", 0.05, capped=True)
    b = _study(tmp_path / "cap1000", "toy", 0.05, capped=False)
    page = tmp_path / "R.md"
    assert main(["report", "claims", "--results", str(a), "--label", "short", "--results", str(b),
                 "--label", "long", "--matrix", str(page)]) == 0
    text = page.read_text()
    assert "Every column is the same dataset (toy)" in text
    assert "budget-bound somewhere (raw: holds everywhere) (one dataset only)" in text
    assert "--label short" in text and "(short)" in text and "(long)" in text


def test_one_study_with_two_datasets_opens_with_the_matrix(tmp_path: Path) -> None:
    root = tmp_path / "s"
    a = _study(root, "small", 0.05, capped=False)
    df1 = pd.read_csv(a)
    df2 = pd.read_csv(_study(tmp_path / "t", "big", -0.05, capped=False))
    pd.concat([df1, df2]).to_csv(a, index=False)
    out = root / "REPORT.md"
    assert main(["report", "claims", "--results", str(a), "--out", str(out)]) == 0
    text = out.read_text()
    assert text.index("## Robustness") < text.index("## The claims")
    m = text.split("## Robustness")[1].split("## The claims")[0]
    assert "depends on the dataset" in m  # onebp better on small, worse on big


def _frozen_reference(tmp_path: Path) -> Path:
    """A reference folder as `onebp report reference` writes it: results.csv, tables/claims.csv (from
    runs with no benchmark: 2a/2b "not run"), runs/*/{metrics,config,env}.json and no per-user arrays."""
    work = tmp_path / "work"
    csv = _study(work / "results", "toy", 0.05, capped=True)
    frozen = C.claims_frame(pd.read_csv(csv))
    ref = tmp_path / "reference" / "toy-ref"
    (ref / "tables").mkdir(parents=True)
    frozen.drop(columns=["raw_verdict", "cap_a", "cap_b"]).assign(verdict=frozen["raw_verdict"]).to_csv(
        ref / "tables" / "claims.csv", index=False)
    df = pd.read_csv(csv)
    df["run_dir"] = df["run_dir"].map(lambda d: "results/" + str(Path(d).relative_to(work / "results")))
    df.to_csv(ref / "results.csv", index=False)
    for d in (work / "results" / "runs").rglob("metrics.json"):  # config/env/metrics.json only
        dst = ref / d.parent.relative_to(work / "results")
        dst.mkdir(parents=True)
        for f in ("metrics.json", "config.json", "env.json"):
            shutil.copyfile(d.parent / f, dst / f)
    return ref


def test_frozen_reference_uses_its_claims_table_and_says_so(tmp_path: Path) -> None:
    """A reference keeps no per-user arrays: the statistics come from its frozen tables/claims.csv,
    the cap columns are recomputed, and a note says which sources were read so."""
    ref = _frozen_reference(tmp_path)
    src = load_source(ref)
    assert all(str(d).startswith(str(ref)) for d in src.df["run_dir"])  # found under the folder's runs/
    got = source_claims(src).set_index(["claim", "metric"])
    assert got.loc[("1a", "ndcg@20"), "raw_verdict"] == "supported"
    assert got.loc[("1a", "ndcg@20"), "verdict"].startswith("budget-bound")  # (a) from results.csv alone
    assert "frozen" in src.notes[0]
    # without the frozen table the missing per-user arrays are named, not a silent p = 1
    (ref / "tables" / "claims.csv").unlink()
    from onebp.errors import UserError

    with pytest.raises(UserError, match="per_user_test.npz"):
        source_claims(load_source(ref))


def test_a_frozen_references_computation_rows_are_recomputed_from_its_benchmark(tmp_path: Path) -> None:
    """2a/2b need no per-user arrays: they are judged again from the shipped bench/*.json under the
    current rule, whatever verdict the frozen claims.csv holds, and the note says so."""
    ref = _frozen_reference(tmp_path)
    claims = pd.read_csv(ref / "tables" / "claims.csv")
    speed = claims["kind"] == "speed"
    assert set(claims.loc[speed, "verdict"]) == {"not run"}
    claims.loc[speed, ["status", "verdict"]] = ["ok", "not supported"]  # a stale verdict, e.g. an older rule's
    claims.to_csv(ref / "tables" / "claims.csv", index=False)
    # OneBP faster in every interleaved pair, yet its slowest repeat is slower than TwoBP's fastest
    from tests.report.test_claims import _bench_file

    _bench_file(ref, "toy", [1.0, 1.3, 0.9, 1.1, 1.05], [1.25, 1.6, 1.2, 1.4, 1.3])
    src = load_source(ref)
    got = source_claims(src)
    assert list(got["claim"]) == list(claims["claim"])  # the rows keep their places
    row = got.set_index("claim").loc["2a"]
    assert row["verdict"] == "supported" and row["n_pairs"] == 5
    assert row["ratio"] == pytest.approx(np.exp(np.mean(np.log(np.array([1.0, 1.3, 0.9, 1.1, 1.05])
                                                              / np.array([1.25, 1.6, 1.2, 1.4, 1.3])))))
    assert got.set_index("claim").loc["2b", "status"] == "ok"  # selected epoch × s/epoch + evaluations
    assert any("recomputed from its shipped benchmark (toy.json)" in n for n in src.notes)
    assert got.set_index(["claim", "metric"]).loc[("1a", "ndcg@20"), "raw_verdict"] == "supported"  # untouched


def test_label_count_must_match(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a = _study(tmp_path / "a", "toy", 0.0, capped=False)
    assert main(["report", "claims", "--results", str(a), "--results", str(a), "--label", "x",
                 "--matrix", str(tmp_path / "m.md")]) == 2
    assert "--label" in capsys.readouterr().err
    assert main(["report", "claims", "--results", str(a)]) == 2  # neither --out nor --matrix


def test_overall_keeps_the_raw_verdicts_beside_budget_bound() -> None:
    # claim 1a on ML-100K: inconclusive at a 200-epoch cap, supported at 1000, OneBP cap-bound at both
    cells = [("ml-100k", "budget-bound (no difference shown at this cap)"),
             ("ml-100k", "budget-bound (onebp ahead at this cap)")]
    assert overall(cells, ["inconclusive", "supported"]) \
        == "budget-bound somewhere (raw: depends on the budget) (one dataset only)"
    assert overall([("a", "budget-bound (x ahead at this cap)"), ("b", "supported")], ["supported", "supported"]) \
        == "budget-bound somewhere (raw: holds everywhere)"


def test_a_broken_frozen_claims_table_is_one_line(tmp_path: Path) -> None:
    from onebp.errors import UserError

    ref = tmp_path / "ref"
    csv = _study(ref, "toy", 0.0, capped=False)
    for d in ref.rglob("per_user_test.npz"):
        d.unlink()  # as in a frozen reference
    (ref / "tables").mkdir()
    (ref / "tables" / "claims.csv").write_text("x,y\n1,2\n")
    with pytest.raises(UserError, match="claims.csv: not a claims table, no column"):
        source_claims(load_source(csv))


def test_headline_is_one_row_per_claim_with_short_effects(tmp_path: Path) -> None:
    from onebp.report.robustness import HEADLINE_END, HEADLINE_START, headline_table

    a = _study(tmp_path / "ml-small", "small", 0.05, capped=False)
    b = _study(tmp_path / "ml-big", "big", 0.05, capped=True)
    frames = [(lbl, source_claims(load_source(p)), {}) for lbl, p in (("ml-small", a), ("ml-big", b))]
    m, cols = matrix_frame(frames)
    lines = headline_table(m, cols).splitlines()
    body = [line for line in lines[2:]]
    claims = [line.split("|")[1].strip().split(":")[0] for line in body]
    assert claims == list(dict.fromkeys(m["claim"]))  # each claim once, first metric (ndcg) kept
    row_1a = next(line for line in body if line.startswith("| 1a"))
    assert "ndcg@20" in row_1a and "supported (+0.050)" in row_1a and "budget-bound (onebp ahead" in row_1a
    page = tmp_path / "ROBUSTNESS.md"
    assert main(["report", "claims", "--results", str(a.parent), "--results", str(b), "--matrix", str(page)]) == 0
    text = page.read_text()
    assert text.index(HEADLINE_START) < text.index(HEADLINE_END) < text.index("## Robustness")
    from onebp.report.robustness import _short_effect

    assert _short_effect("× 0.729 [0.593, 0.897]") == "×0.729"  # the interval stays in the full matrix
    assert _short_effect("Δ +0.0302 [+0.0252, +0.0351]") == "+0.030"


def test_headline_into_fills_the_readme_block_and_refuses_a_readme_without_markers(tmp_path: Path, capsys) -> None:
    a = _study(tmp_path / "ml-small", "small", 0.05, capped=False)
    b = _study(tmp_path / "ml-big", "big", 0.05, capped=True)
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n<!-- headline-matrix: generated -->\nPLACEHOLDER-LINE\n<!-- /headline-matrix -->\n\nrest\n")
    page = tmp_path / "ROBUSTNESS.md"
    args = ["report", "claims", "--results", str(a.parent), "--results", str(b), "--matrix", str(page)]
    assert main([*args, "--headline-into", str(readme)]) == 0
    text = readme.read_text()
    assert "PLACEHOLDER-LINE" not in text and text.endswith("<!-- /headline-matrix -->\n\nrest\n")
    assert "| 1a: " in text and text.count("<!-- headline-matrix") == 1
    # no markers: one line naming the file, and neither page is written
    bare = tmp_path / "BARE.md"
    bare.write_text("# no markers\n")
    page.unlink()
    assert main([*args, "--headline-into", str(bare)]) == 2
    assert "BARE.md" in capsys.readouterr().err and not page.exists() and bare.read_text() == "# no markers\n"


def test_an_empty_bench_list_reads_no_other_studys_benchmark(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The workflow passes ``--bench`` with no file when the config runs no benchmark; an earlier
    study's results/bench/*.json in the same folder must not then decide claims 2a/2b."""
    a = _study(tmp_path / "results", "toy", 0.05, capped=False)
    (a.parent / "bench").mkdir()
    (a.parent / "bench" / "toy.json").write_text("{}")  # left by an earlier study
    assert load_source(a, bench=[]).bench == []
    assert load_source(a).bench == [a.parent / "bench" / "toy.json"]  # a reference folder's own
    out = tmp_path / "REPORT.md"
    assert main(["report", "claims", "--results", str(a), "--bench", "--out", str(out)]) == 0
    speed = [line for line in out.read_text().splitlines() if line.startswith("| 2a")]
    assert speed and all("not run" in line for line in speed)
    # with several sources each folder's own bench/ is read: a --bench there is refused, not ignored
    assert main(["report", "claims", "--results", str(a), "--results", str(a), "--label", "x", "--label", "y",
                 "--bench", "--matrix", str(tmp_path / "m.md")]) == 2
    assert "--bench with 2 --results" in capsys.readouterr().err
