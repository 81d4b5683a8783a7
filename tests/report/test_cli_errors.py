"""`onebp report tables|figures|claims|compare|summary` refuse a bad option or input file in one
stderr line naming the flag or the file (exit 2), before anything is written: --alpha outside (0, 1),
an unknown --protocol/--metric/--metrics, a --ks below 1, a --bench file that is not a benchmark
file, a results.csv that is a directory, cut short or header only, a runs.csv that is missing or
malformed, and a --tables file that is missing, a directory or not UTF-8."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from onebp.cli import main
from onebp.errors import UserError
from onebp.report.collect import load_results
from onebp.report.efficiency import load_bench
from onebp.report.layout import load_runs, run_eval_every

SMOKE = Path(__file__).resolve().parents[2] / "results" / "reference" / "smoke"
BINARY = b"\xff\xfe\x00\x81 not text"


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    """A copy of the shipped smoke reference's results.csv (a valid table: clean and paper runs)."""
    dst = tmp_path / "in" / "results.csv"
    dst.parent.mkdir()
    shutil.copy(SMOKE / "results.csv", dst)
    return dst


def cut_short(src: Path, dst: Path) -> Path:
    """``src`` cut right after a delimiter in its middle row: that row's last fields are lost."""
    text = src.read_text()
    dst.write_text(text[: text.index(",", text.index("\n", len(text) // 2) + 1) + 1])
    return dst


def header_only(src: Path, dst: Path) -> Path:
    dst.write_text(src.read_text().splitlines()[0] + "\n")
    return dst


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def tables(results: Path, out: Path, *args: str) -> int:
    return main(["report", "tables", "--results", str(results), "--out-dir", str(out), *args])


# -- --alpha ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", ["nan", "inf", "0", "1", "-1", "2"])
def test_tables_refuses_an_alpha_outside_the_open_unit_interval(results, tmp_path, capsys, alpha):
    assert tables(results, tmp_path / "out", "--alpha", alpha) == 2
    assert "--alpha" in one_error_line(capsys)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("alpha", ["nan", "0", "1"])
def test_claims_refuses_an_alpha_outside_the_open_unit_interval(results, tmp_path, capsys, alpha):
    out = tmp_path / "out" / "REPORT.md"
    assert main(["report", "claims", "--results", str(results), "--out", str(out), "--alpha", alpha]) == 2
    assert "--alpha" in one_error_line(capsys)
    assert not out.exists()


# -- names of protocols and metrics -------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["no-such-name", "CLEAN", " "])
def test_tables_refuses_an_unknown_protocol_naming_the_known_ones(results, tmp_path, capsys, protocol):
    assert tables(results, tmp_path / "out", "--protocol", protocol) == 2
    err = one_error_line(capsys)
    assert "--protocol" in err and "clean, paper" in err


def test_figures_draw_nothing_for_an_unknown_protocol_or_metric(results, tmp_path, capsys):
    base = ["report", "figures", "--results", str(results), "--runs", str(SMOKE / "runs.csv"),
            "--out-dir", str(tmp_path / "figs")]
    assert main([*base, "--protocol", "ONEBP"]) == 2
    assert "--protocol" in one_error_line(capsys)
    assert main([*base, "--metric", "onebp,"]) == 2
    err = one_error_line(capsys)
    assert "--metric" in err and "ndcg" in err  # the known metric names are listed
    assert not (tmp_path / "figs").exists()


def test_tables_refuses_an_unknown_metric_and_a_cutoff_below_one(results, tmp_path, capsys):
    assert tables(results, tmp_path / "out", "--metrics", "recall,no_such_metric") == 2
    err = one_error_line(capsys)
    assert "--metrics" in err and "'no_such_metric'" in err
    for ks in ("0", "5,-5"):
        assert tables(results, tmp_path / "out", "--ks", ks) == 2
        assert "--ks" in one_error_line(capsys)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("metrics", ["no_such_metric@20", "ndcg@0", "ndcg", "recall@20,ndcg@x"])
def test_claims_refuses_a_metric_that_is_not_metric_at_k(results, tmp_path, capsys, metrics):
    out = tmp_path / "out" / "REPORT.md"
    assert main(["report", "claims", "--results", str(results), "--out", str(out), "--metrics", metrics]) == 2
    assert "--metrics" in one_error_line(capsys)
    assert not out.exists()


# -- input files -------------------------------------------------------------------------------------


def test_load_results_refuses_a_directory_a_cut_row_and_a_header_only_table(results, tmp_path):
    with pytest.raises(UserError, match="a directory"):
        load_results(tmp_path)
    cut = cut_short(results, tmp_path / "cut.csv")
    line = cut.read_text().count("\n") + 1  # the cut row is the file's last line
    with pytest.raises(UserError, match=rf"cut\.csv:{line}: row cut short"):
        load_results(cut)
    with pytest.raises(UserError, match="no rows"):
        load_results(header_only(results, tmp_path / "head.csv"))
    # a rerun still being written may be partial: the comparison reports its missing cells
    assert load_results(header_only(results, tmp_path / "head.csv"), partial_ok=True).empty


def test_tables_refuses_a_cut_results_table_before_writing(results, tmp_path, capsys):
    cut = cut_short(results, tmp_path / "cut.csv")
    assert tables(cut, tmp_path / "out") == 2
    assert str(cut) in one_error_line(capsys)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("fault", ["missing", "directory", "empty", "binary", "not json", "list", "no records"])
def test_a_bad_bench_file_is_refused_naming_it(results, tmp_path, capsys, fault):
    p = tmp_path / "bench.json"
    if fault == "directory":
        p.mkdir()
    elif fault != "missing":
        p.write_bytes({"empty": b"", "binary": BINARY, "not json": b'{"records": [',
                       "list": b"[1, 2, 3]", "no records": b'{"device": "cpu"}'}[fault])
    with pytest.raises(UserError, match=str(p)):
        load_bench([p])
    # tables reads every input before it writes the first table
    assert tables(results, tmp_path / "out", "--bench", str(p)) == 2
    assert str(p) in one_error_line(capsys)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("fault", ["missing", "directory", "empty", "binary", "cut short", "wrong columns",
                                   "header only"])
def test_figures_refuse_a_bad_runs_csv_naming_it(results, tmp_path, capsys, fault):
    p = tmp_path / "runs.csv"
    src = SMOKE / "runs.csv"
    if fault == "directory":
        p.mkdir()
    elif fault == "cut short":
        lines = src.read_text().splitlines(keepends=True)
        p.write_text("".join(lines[:3]) + lines[3].split(",")[0] + ",")
    elif fault == "wrong columns":
        p.write_text("a,b,c\n1,2,3\n")
    elif fault == "header only":
        header_only(src, p)
    elif fault != "missing":
        p.write_bytes({"empty": b"", "binary": BINARY}[fault])
    with pytest.raises(UserError, match=str(p)):
        load_runs(p)
    assert main(["report", "figures", "--results", str(results), "--runs", str(p),
                 "--out-dir", str(tmp_path / "figs")]) == 2
    assert str(p) in one_error_line(capsys)
    assert not (tmp_path / "figs").exists()


def test_compare_refuses_a_directory_and_a_cut_reference(results, tmp_path, capsys):
    assert main(["report", "compare", str(results), str(results)]) == 0  # the same table matches itself
    capsys.readouterr()
    assert main(["report", "compare", str(tmp_path), str(results)]) == 2
    assert str(tmp_path) in one_error_line(capsys)
    cut = cut_short(results, tmp_path / "ref.csv")
    # before: the cut row read as NaN fields, the rest agreed, and the rerun "matched" (exit 0)
    assert main(["report", "compare", str(results), str(cut)]) == 2
    assert "ref.csv" in one_error_line(capsys)


def test_compare_still_fails_a_header_only_rerun_as_nothing_compared(results, tmp_path, capsys):
    rerun = header_only(results, tmp_path / "rerun.csv")
    assert main(["report", "compare", str(rerun), str(results)]) == 1


@pytest.mark.parametrize("fault", ["missing", "directory", "binary"])
def test_summary_refuses_a_bad_tables_file_naming_it(tmp_path, capsys, fault):
    p = tmp_path / "main.md"
    if fault == "directory":
        p.mkdir()
    elif fault == "binary":
        p.write_bytes(BINARY)
    out = tmp_path / "out" / "summary.md"
    assert main(["report", "summary", "--tables", str(p), "--out", str(out)]) == 2
    err = one_error_line(capsys)
    assert str(p) in err and "--tables" in err
    assert not out.exists()


def test_tables_without_timing_rows_are_refused_before_writing(results, tmp_path, capsys, monkeypatch):
    # Before: main.* and comparisons.* were written, then the efficiency table ended in ValueError.
    # The main table needs the runs' per-user arrays, which the shipped smoke runs lack: stand it in.
    import pandas as pd

    import onebp.report.tables as T

    stand_in = T.Table(pd.DataFrame({"x": ["1"]}), pd.DataFrame({"x": [1.0]}), "stand-in")
    monkeypatch.setattr(T, "main_table", lambda *a, **k: stand_in)
    monkeypatch.setattr(T, "comparison_table", lambda *a, **k: stand_in)
    lines = results.read_text().splitlines(keepends=True)
    no_timing = tmp_path / "no_timing.csv"
    no_timing.write_text(lines[0] + "".join(r for r in lines[1:] if ",timing," not in r and ",memory," not in r
                                            and ",train," not in r))
    assert tables(no_timing, tmp_path / "out") == 2
    err = one_error_line(capsys)
    assert str(no_timing) in err and "timing" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("body", "expected"), [
    (b"\xff\xfe{}", "not UTF-8 text (byte 0)"),
    (b"[5]", "expected a JSON object"),
    (b'{"eval_every": true}', "got True"),
    (b'{"eval_every": 0}', "got 0"),
    (b'{"eval_every": "5"}', "got '5'"),
])
def test_run_eval_every_names_a_damaged_config_json(tmp_path: Path, body: bytes, expected: str) -> None:
    """Before: a non-UTF-8 config.json raised UnicodeDecodeError and a list raised AttributeError."""
    (tmp_path / "config.json").write_bytes(body)
    with pytest.raises(UserError, match="config.json") as err:
        run_eval_every(tmp_path)
    assert expected in str(err.value)


def test_run_eval_every_reads_the_value_and_defaults_to_one(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"eval_every": 5}')
    assert run_eval_every(tmp_path) == 5
    (tmp_path / "config.json").write_text('{"lr": 0.001}')
    assert run_eval_every(tmp_path) == 1


# -- --reference --------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["--reference", "onebpp"], ["--reference", "mostpop"],
                                  ["--reference", "onebp", "--methods", "twobp"]])
def test_tables_refuse_a_reference_without_rows(tmp_path, capsys, args):
    """Before: exit 0, and the comparisons table marked no difference (nothing was compared with it)."""
    results = SMOKE / "results.csv"
    assert tables(results, tmp_path / "out", *args) == 2
    err = one_error_line(capsys)
    assert f"--reference {args[1]!r}: no rows of that method in {results}" in err
    assert not (tmp_path / "out").exists()


def test_claims_refuse_a_reference_without_rows(tmp_path, capsys):
    """Before: exit 0 and a report of 'not run' claims (frozen claims table), or, with the runs' per-user
    arrays on disk, KeyError 'verdict' on the empty claims frame."""
    out = tmp_path / "REPORT.md"
    assert main(["report", "claims", "--results", str(SMOKE), "--out", str(out), "--reference", "onebpp"]) == 2
    err = one_error_line(capsys)
    assert "--reference 'onebpp': no rows of that method in" in err and str(SMOKE) in err
    assert not out.exists()


def test_a_report_with_no_claim_is_written_not_a_key_error(tmp_path):
    """build_report on an empty claims frame (no claim could be formed: e.g. neither the reference nor
    its twin ran on any dataset). Before: KeyError 'verdict'."""
    import pandas as pd

    from onebp.report.reproduction import build_report

    text, frame = build_report(load_results(SMOKE / "results.csv"), None, tmp_path / "REPORT.md",
                               frame=pd.DataFrame())
    assert frame.empty and "Verdicts: none (no claim could be compared)." in text
