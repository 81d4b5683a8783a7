"""The operations commands refuse bad input in one line (exit 2, naming the argument or file, no
traceback), before timing or writing anything; `onebp status` lists a damaged run as damaged and
goes on with the others."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from onebp.cli import main as cli
from onebp.operations.status import run_status

REPO = Path(__file__).resolve().parent.parent.parent


def _refused(argv: list[str], capsys, *names: str) -> str:
    assert cli(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("onebp: error: "), captured.err
    assert "Traceback" not in captured.err
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


def _estimate(*extra: str) -> list[str]:
    return ["estimate", "--workflow-dir", str(REPO), "--configfile", str(REPO / "config" / "smoke.yaml"),
            "--device", "cpu", "--warmup", "0", "--epochs", "1", *extra]


# -- onebp estimate ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("flag", "value"), [("--epochs", "0"), ("--warmup", "-1"), ("--gpus", "0"),
                                             ("--max-negatives", "0")])
def test_estimate_refuses_counts_that_price_nothing(flag: str, value: str, tiny_split_dir, capsys) -> None:
    # --epochs 0 was a StatisticsError traceback (the median of no timed epochs)
    _refused(_estimate("--data", f"tiny={tiny_split_dir}", flag, value), capsys, f"{flag} {value}")


@pytest.mark.parametrize("content", ["", "{not json", "[1, 2]", '{"tiny/onebp/cpu/x": {"epoch_s": "fast"}}',
                                     '{"k": {"epoch_s": 1, "eval_s": 1, "bogus": 2}}', "\udcff"])
def test_estimate_refuses_a_damaged_cache_and_leaves_it(content: str, tiny_split_dir, tmp_path, capsys) -> None:
    cache = tmp_path / "timings.json"
    cache.write_bytes(content.encode("utf-8", "surrogateescape"))
    _refused(_estimate("--data", f"tiny={tiny_split_dir}", "--cache", str(cache)), capsys, f"--cache {cache}")
    assert cache.read_bytes() == content.encode("utf-8", "surrogateescape")


def test_estimate_refuses_a_directory_as_cache(tiny_split_dir, tmp_path, capsys) -> None:
    _refused(_estimate("--data", f"tiny={tiny_split_dir}", "--cache", str(tmp_path)), capsys, "--cache")


def test_estimate_refuses_a_missing_or_malformed_configfile(tmp_path, capsys) -> None:
    missing = tmp_path / "nope.yaml"
    _refused(_estimate("--configfile", str(missing)), capsys, f"--configfile {missing}")
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets: [a, b\nseeds: {")
    _refused(_estimate("--configfile", str(bad)), capsys, f"--configfile {bad}", "not YAML")
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    _refused(_estimate("--configfile", str(listing)), capsys, f"--configfile {listing}", "mapping")


def test_estimate_refuses_a_malformed_config_json(tmp_path, capsys) -> None:
    bad = tmp_path / "config.json"
    bad.write_text("{")
    _refused(["estimate", "--workflow-dir", str(REPO), "--config-json", str(bad)], capsys, f"--config-json {bad}")


def test_estimate_refuses_data_that_is_not_a_directory(tmp_path, capsys) -> None:
    # it was silently priced by catalog size instead of timed on the split the user gave
    _refused(_estimate("--data", f"tiny={tmp_path / 'nope'}"), capsys, "--data", str(tmp_path / "nope"))
    _refused(_estimate("--data", "tiny="), capsys, "--data")


def test_estimate_refuses_no_datasets_and_a_malformed_device(tiny_split_dir, capsys) -> None:
    # "--datasets ," priced an empty study and exited 0
    _refused(_estimate("--data", f"tiny={tiny_split_dir}", "--datasets", ","), capsys, "--datasets")
    argv = _estimate("--data", f"tiny={tiny_split_dir}")
    argv[argv.index("--device") + 1] = "cuda:x"
    _refused(argv, capsys, "--device", "cuda:x")


# -- onebp status -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "content", "why"), [
    ("config.json", b"", "config.json is empty"),
    ("config.json", b"{\"method\": ", "config.json is not JSON"),
    ("config.json", b"\xff\xfe\x00garbage", "config.json is not text"),
    ("config.json", b"[1, 2]", "config.json is not a JSON object"),
    ("config.json", b'{"epochs": "many"}', "config.json: epochs"),
    ("metrics.json", b"", "metrics.json is empty"),
    ("run_state.json", b"null", "run_state.json is not a JSON object"),
    ("curve.csv", b"epoch,seconds_train\n1,\xff\xfe\n", "curve.csv is not a CSV file"),
])
def test_status_lists_a_damaged_run_and_goes_on(name: str, content: bytes, why: str, tmp_path, capsys) -> None:
    good = tmp_path / "results" / "good"
    good.mkdir(parents=True)
    (good / "config.json").write_text(json.dumps({"method": "onebp", "dataset": "tiny", "epochs": 4}))
    (good / "curve.csv").write_text("epoch,seconds_train\n1,0.5\n2,0.5\n")
    bad = tmp_path / "results" / "bad"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({"method": "onebp", "dataset": "tiny", "epochs": 4}))
    (bad / "curve.csv").write_text("epoch,seconds_train\n1,0.5\n")
    (bad / name).write_bytes(content)
    row = run_status(bad)
    assert row["state"] == "damaged" and why in row["error"]
    assert cli(["status", str(tmp_path / "results")]) == 0
    out = capsys.readouterr()
    assert "Traceback" not in out.err and "damaged: " + why in out.out
    assert "2/4" in out.out and "1 damaged" in out.out  # the good run is still listed
    assert cli(["status", "--json", str(tmp_path / "results")]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(r["state"] for r in rows) == ["damaged", "stopped"]


def test_status_tolerates_a_half_written_last_curve_line(tmp_path) -> None:
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"method": "onebp", "epochs": 9}))
    (run / "curve.csv").write_text("epoch,seconds_train\n1,0.5\n2,0.5\nx")  # the writer is mid-line
    row = run_status(run)
    assert row["state"] == "stopped" and row["epoch"] == 2


# -- onebp bench and bench-suite ------------------------------------------------------------------------
@pytest.mark.parametrize(("flag", "value"), [("--epochs", "0"), ("--evals", "0"), ("--warmup", "-1")])
def test_bench_refuses_counts_that_time_nothing(flag: str, value: str, tiny_split_dir, capsys) -> None:
    # --epochs 0 was a ValueError traceback (min of no epochs) after building the model
    _refused(["bench", "--data", str(tiny_split_dir), "--method", "onebp", flag, value], capsys, f"{flag} {value}")


@pytest.mark.parametrize(("flag", "value"), [("--epochs", "0"), ("--evals", "0"), ("--warmup", "-1"),
                                             ("--repeats", "0"), ("--methods", ",")])
def test_bench_suite_refuses_before_the_first_child(flag: str, value: str, tiny_split_dir, tmp_path,
                                                    capsys) -> None:
    argv = ["bench-suite", "--data", str(tiny_split_dir), "--methods", "onebp", "--out", str(tmp_path / "b"),
            flag, value]
    _refused(argv, capsys, f"{flag} {value}" if flag != "--methods" else "--methods")
    assert list(tmp_path.iterdir()) == []


def test_bench_suite_refuses_missing_inputs_and_a_directory_as_out(tiny_split_dir, tmp_path, capsys) -> None:
    base = ["bench-suite", "--methods", "onebp"]
    _refused([*base, "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "b")], capsys, "--data")
    _refused([*base, "--data", str(tiny_split_dir), "--out", str(tmp_path)], capsys, "--out")
    _refused([*base, "--data", str(tiny_split_dir), "--out", str(tmp_path / "b"),
              "--params-file", f"onebp={tmp_path / 'best.json'}"], capsys, "--params-file", "best.json")


@pytest.mark.parametrize(("extra", "named"), [(["--methods", "no-such-method"], "no-such-method"),
                                              (["--methods", "onebp", "--set", "zzz_key=1"], "zzz_key"),
                                              (["--methods", "onebp", "--method-set", "onebp:epochs=nan"], "epochs")])
def test_bench_suite_refuses_a_bad_method_or_setting_before_the_first_child(extra, named, tiny_split_dir, tmp_path,
                                                                            capsys, monkeypatch) -> None:
    # each child costs seconds of start-up and would fail the same way: refused once, in the parent
    import subprocess

    def no_child(*args, **kwargs):
        raise AssertionError("a child was started")

    monkeypatch.setattr(subprocess, "run", no_child)
    _refused(["bench-suite", "--data", str(tiny_split_dir), "--repeats", "1", "--out", str(tmp_path / "b"), *extra],
             capsys, named)
    assert list(tmp_path.iterdir()) == []
