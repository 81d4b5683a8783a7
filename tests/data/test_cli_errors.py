"""``onebp data`` and split loading refuse bad input in one line naming the flag or file (found by
tests/test_cli_fuzz.py): exit 2, no traceback, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from onebp.cli import main
from onebp.data.catalog import load_dataset_file
from onebp.data.split_format import SplitError, load_split
from onebp.data.synthetic import SyntheticConfig
from onebp.errors import UserError

NOT_UTF8 = b"\xff\xfe\x00\x9c" + bytes(range(256))


def refused(capsys, *argv: str) -> str:
    """Run ``onebp ARGV``; assert exit 2 with a single error line, and return that line."""
    assert main(list(argv)) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


# --- split parts and dataset definitions that are not UTF-8 / not an object --------------------------

@pytest.fixture
def split_dir(tmp_path: Path, capsys) -> Path:
    out = tmp_path / "split"
    assert main(["data", "synth", "--out", str(out), "--n-users", "20", "--n-items", "15", "--mean-degree", "4",
                 "--min-degree", "2"]) == 0
    capsys.readouterr()
    return out


def test_a_split_part_that_is_not_utf8_names_its_file_and_line(split_dir: Path) -> None:
    """Before: UnicodeDecodeError from the text reader (a traceback in train/bench/estimate)."""
    train = split_dir / "train.tsv"
    n_lines = len(train.read_bytes().splitlines())
    train.write_bytes(train.read_bytes() + NOT_UTF8)
    with pytest.raises(SplitError, match=rf"train\.tsv:{n_lines + 1}: not UTF-8"):
        load_split(split_dir)


def test_a_split_part_whose_header_is_not_utf8_names_line_1(split_dir: Path) -> None:
    (split_dir / "test.tsv").write_bytes(NOT_UTF8)
    with pytest.raises(SplitError, match=r"test\.tsv:1: not UTF-8"):
        load_split(split_dir)


def test_a_meta_json_that_is_not_utf8_or_not_an_object_names_the_file(split_dir: Path) -> None:
    meta = split_dir / "meta.json"
    meta.write_bytes(NOT_UTF8)
    with pytest.raises(SplitError, match=r"meta\.json: not UTF-8"):
        load_split(split_dir)
    meta.write_text("[1, 2]")
    with pytest.raises(SplitError, match=r"meta\.json: expected a JSON object, got list"):
        load_split(split_dir)


def test_a_dataset_file_that_is_not_utf8_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "ds.json"
    path.write_bytes(NOT_UTF8)
    with pytest.raises(UserError, match=r"ds\.json: not UTF-8"):
        load_dataset_file(path)


@pytest.mark.parametrize("body", ["[1, 2, 3]", '"x"', "3"])
def test_a_dataset_file_that_is_not_an_object_names_the_file(tmp_path: Path, body: str) -> None:
    """Before: a JSON list said 'dataset definition needs 'name' ...' without naming the file."""
    path = tmp_path / "ds.json"
    path.write_text(body)
    with pytest.raises(UserError, match=r"ds\.json: a dataset definition is a JSON object"):
        load_dataset_file(path)


def test_a_dataset_file_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "ds.json"
    path.write_text(json.dumps({"name": "x", "files": ["not an object"]}))
    with pytest.raises(UserError, match=r"ds\.json: dataset 'x': every entry of 'files' must be an object"):
        load_dataset_file(path)


# --- data download / prepare flags -------------------------------------------------------------------

def _custom(tmp_path: Path, command: str) -> list[str]:
    """A custom dataset whose URL is never reached: every refusal below comes before any fetch."""
    argv = ["data", command, "--dataset", "tiny", "--url", "http://127.0.0.1:9/u.data", "--format", "u.data",
            "--allow-unverified", "--offline", "--raw-dir", str(tmp_path / "raw")]
    return argv + (["--out", str(tmp_path / "out")] if command == "prepare" else [])


@pytest.mark.parametrize("command", ["download", "prepare"])
@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_backoff_must_be_finite_and_non_negative(tmp_path: Path, capsys, command: str, value: str) -> None:
    """Before: NaN and inf passed '< 0' (a retry would sleep forever)."""
    line = refused(capsys, *_custom(tmp_path, command), "--backoff", value)
    assert "--backoff" in line and "--retries" not in line
    assert not (tmp_path / "out").exists() and not (tmp_path / "raw").exists()


@pytest.mark.parametrize("flag", ["--kcore-user", "--kcore-item"])
def test_negative_kcore_names_its_flag(tmp_path: Path, capsys, flag: str) -> None:
    """Before: 'k-core thresholds must be >= 0', naming neither flag."""
    assert flag in refused(capsys, *_custom(tmp_path, "prepare"), flag, "-1")
    assert not (tmp_path / "out").exists()


def test_min_rating_nan_names_the_flag(tmp_path: Path, capsys) -> None:
    """Before: NaN dropped every rating and the error blamed the dataset (or, offline, the raw file)."""
    assert "--min-rating" in refused(capsys, *_custom(tmp_path, "prepare"), "--min-rating", "nan")


def test_test_ratio_zero_names_the_flag_for_a_ratio_split(tmp_path: Path, capsys) -> None:
    """Before: refused only after preprocessing as 'no test interactions left', without the flag."""
    line = refused(capsys, *_custom(tmp_path, "prepare"), "--test-ratio", "0", "--split", "ratio")
    assert "--test-ratio must be > 0" in line


# --- data synth ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("flag", "value"), [
    ("--n-users", "0"), ("--n-items", "0"), ("--rank", "0"), ("--min-degree", "0"), ("--seed", "-1"),
    ("--mean-degree", "nan"), ("--mean-degree", "0.0"), ("--mean-degree", "0.5"), ("--mean-degree", "inf"),
    ("--signal", "nan"), ("--signal", "inf"), ("--popularity-exponent", "nan"),
    ("--test-ratio", "nan"), ("--test-ratio", "0.0"), ("--test-ratio", "1.0"), ("--test-ratio", "-1"),
    ("--test-ratio", "inf"), ("--valid-ratio", "nan"), ("--valid-ratio", "-1"), ("--valid-ratio", "1.0"),
])
def test_synth_refuses_bad_numbers_naming_the_flag(tmp_path: Path, capsys, flag: str, value: str) -> None:
    """Before: tracebacks (0 users, mean degree < 1 or non-finite) or a split written anyway."""
    out = tmp_path / "split"
    assert flag in refused(capsys, "data", "synth", "--out", str(out), flag, value)
    assert not out.exists()


def test_synth_defaults_and_edges_pass_the_check() -> None:
    SyntheticConfig().check()
    SyntheticConfig(n_users=1, n_items=1, rank=1, mean_degree=1.0, min_degree=1, valid_ratio=0.0).check()


def _placed_u_data(tmp_path: Path) -> list[str]:
    """``_custom``'s dataset with its u.data already placed (ratings 1..5), so prepare gets to preprocessing."""
    (tmp_path / "raw" / "tiny").mkdir(parents=True)
    rows = [f"{u}\t{i}\t{1 + (u + i) % 5}\t{u * 100 + i}" for u in range(1, 9) for i in range(1, 7)]
    (tmp_path / "raw" / "tiny" / "u.data").write_text("\n".join(rows) + "\n")
    return _custom(tmp_path, "prepare")


def test_min_rating_above_every_rating_names_the_flag_and_the_range(tmp_path: Path, capsys) -> None:
    """Before: 'no interactions left after preprocessing', not saying that --min-rating emptied it."""
    line = refused(capsys, *_placed_u_data(tmp_path), "--min-rating", "inf")
    assert "--min-rating inf keeps none of" in line and "48 ratings" in line and "from 1 to 5" in line
    assert not (tmp_path / "out").exists()


def test_a_kcore_that_removes_everything_names_its_thresholds(tmp_path: Path, capsys) -> None:
    line = refused(capsys, *_placed_u_data(tmp_path), "--kcore-user", "50")
    assert "48 distinct pairs before the k-core, user >= 50, item >= 0" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("flag", "value"), [("--sha256", "0" * 63), ("--sha256", "g" * 64),
                                             ("--test-sha256", "0" * 65)])
def test_a_malformed_sha256_flag_is_refused_before_fetching(tmp_path: Path, capsys, flag: str, value: str) -> None:
    """Before: the whole file was downloaded (here: a connection to a closed port), then failed."""
    good = ["--sha256", "0" * 64, "--test-url", "http://127.0.0.1:9/te.csv", "--test-sha256", "1" * 64]
    good[good.index(flag) + 1] = value
    line = refused(capsys, "data", "download", "--dataset", "x", "--url", "http://127.0.0.1:9/tr.csv", "--format",
                   "onebp-csv", *good, "--raw-dir", str(tmp_path / "raw"), "--retries", "0")
    assert line.startswith(f"onebp: error: {flag} must be 64 hexadecimal digits"), line
    assert not (tmp_path / "raw").exists()


@pytest.mark.parametrize(("key", "value"), [("sha256", "0" * 63), ("git_blob", "z" * 40), ("member_sha256", "0")])
def test_a_malformed_checksum_in_a_dataset_file_names_its_key(tmp_path: Path, key: str, value: str) -> None:
    path = tmp_path / "ds.json"
    path.write_text(json.dumps({"name": "x", "files": [
        {"role": "all", "format": "ml-100k-zip", "url": "http://127.0.0.1:9/a.zip", key: value}]}))
    with pytest.raises(UserError, match=rf"ds\.json: dataset 'x': files\[0\]: '{key}' must be"):
        load_dataset_file(path)
