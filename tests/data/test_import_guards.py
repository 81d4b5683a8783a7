"""Data that would train nothing, make phantom ids, or write outside the raw folder is refused in
one line before anything is written (issue 16)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from onebp.data import cli as data_cli
from onebp.data.catalog import custom_dataset, load_dataset_file
from onebp.data.download import FetchOptions, fetch_dataset
from onebp.data.prepare import ID_RANGE_FACTOR, ID_RANGE_SLACK, import_split
from onebp.data.split_format import Split
from onebp.errors import UserError

REPO = Path(__file__).resolve().parents[2]
TRAIN = "user,item,rating\n" + "".join(f"{u},{i},5\n" for u in range(6) for i in range(u, u + 5))


def _csv(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_test_file_inside_train_is_refused(tmp_path: Path) -> None:
    """Before: the split was written with 0 test rows; training then wrote NaN metrics, exit 0."""
    train = _csv(tmp_path / "tr.csv", TRAIN)
    test = _csv(tmp_path / "te.csv", "user,item,rating\n0,0,5\n1,2,5\n")  # both pairs are in train
    with pytest.raises(UserError, match=r"te\.csv: no test interactions left \(2 also in the training data"):
        import_split("onebp-csv", train, test, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_validation_ratio_that_carves_nothing_is_refused(tmp_path: Path) -> None:
    train = _csv(tmp_path / "tr.csv", "user,item,rating\n0,0,5\n1,1,5\n")  # one interaction per user
    test = _csv(tmp_path / "te.csv", "user,item,rating\n0,1,5\n1,0,5\n")
    with pytest.raises(UserError, match=r"tr\.csv: the validation ratio carved no interactions"):
        import_split("onebp-csv", train, test, tmp_path / "out", valid_ratio=0.1)


@pytest.mark.parametrize("big", [100_000_000, 90_000_000_000_000_000])
def test_an_id_far_beyond_the_distinct_ids_is_refused_with_its_line(tmp_path: Path, big: int) -> None:
    """Before: 10^8 made 10^8 phantom items; ~9e16 ended in a MemoryError traceback."""
    train = _csv(tmp_path / "tr.csv", TRAIN + f"3,{big},5\n")
    test = _csv(tmp_path / "te.csv", "user,item,rating\n0,9,5\n")
    with pytest.raises(UserError, match=rf"tr\.csv:32: item id {big} is far beyond the 11 distinct item ids"):
        import_split("onebp-csv", train, test, tmp_path / "out")


def test_id_range_threshold_and_lightgcn_users(tmp_path: Path) -> None:
    lines = [f"{u} {u} {u + 1}" for u in range(5)]
    test = _csv(tmp_path / "test.txt", "0 3\n")
    ok = ID_RANGE_FACTOR * 5 + ID_RANGE_SLACK - 1  # 5 users with interactions: max id + 1 == the limit
    import_split("lightgcn", _csv(tmp_path / "ok.txt", "\n".join(lines + [f"{ok}"]) + "\n"), test, tmp_path / "a")
    with pytest.raises(UserError, match=r"bad\.txt:6: user id 10000000 is far beyond"):
        import_split("lightgcn", _csv(tmp_path / "bad.txt", "\n".join(lines + ["10000000"]) + "\n"), test,
                     tmp_path / "b")


def test_training_refuses_an_empty_test_part() -> None:
    from onebp.config import TrainConfig
    from onebp.training.trainer import check_protocol

    split = Split(3, 3, {"train": np.array([[0, 0], [1, 1]]), "test": np.empty((0, 2), dtype=np.int64)},
                  name="hollow")
    with pytest.raises(UserError, match="'hollow' has an empty test part"):
        check_protocol(TrainConfig(protocol="paper"), split)


# --- paths: a dataset name or raw file name is one plain name -----------------------------------

def _spec(**file: str) -> dict:
    return {"name": "x", "files": [{"role": "all", "format": "u.data", "url": "http://h/u.data", **file}]}


@pytest.mark.parametrize("filename", ["../../x", "/etc/x", "..", "sub/x", ".hidden"])
def test_dataset_file_name_with_a_path_is_refused(tmp_path: Path, filename: str) -> None:
    """Before: `filename: ../../x` was written as RAW_DIR/<name>/../../x, outside --raw-dir."""
    path = tmp_path / "ds.json"
    path.write_text(json.dumps(_spec(filename=filename)))
    with pytest.raises(UserError, match="file name .* is not a plain name"):
        load_dataset_file(path)


@pytest.mark.parametrize("name", ["..", "../../x", "a/b", ""])
def test_dataset_name_with_a_path_is_refused(name: str) -> None:
    with pytest.raises(UserError, match="dataset name .* is not a plain name"):
        custom_dataset({**_spec(), "name": name})


def test_dataset_option_renaming_a_dataset_file_is_refused(tmp_path: Path) -> None:
    """Before: `--dataset ../../x --dataset-file F` made the raw folder RAW_DIR/../../x."""
    path = tmp_path / "ds.json"
    path.write_text(json.dumps(_spec()))
    p = argparse.ArgumentParser()
    data_cli.register(p.add_subparsers())
    args = p.parse_args(["data", "download", "--dataset", "../../x", "--dataset-file", str(path),
                         "--raw-dir", str(tmp_path / "raw"), "--offline"])
    with pytest.raises(UserError, match="--dataset '../../x' is not a plain name"):
        args.func(args)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds.json"]


def test_fetch_refuses_a_path_even_when_the_entry_bypassed_the_definition_check(tmp_path: Path) -> None:
    from dataclasses import replace

    ds = custom_dataset(_spec())
    with pytest.raises(UserError, match="dataset name '..'"):
        fetch_dataset(replace(ds, name=".."), tmp_path / "raw", FetchOptions(offline=True))
    bad = replace(ds, inputs=(replace(ds.inputs[0], file=replace(ds.inputs[0].file, filename="../x")),))
    with pytest.raises(UserError, match="raw file name '../x'"):
        fetch_dataset(bad, tmp_path / "raw", FetchOptions(offline=True))


def test_workflow_schema_refuses_a_dataset_named_dotdot() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid({"datasets": ["ml-100k", "tiny"], "dataset_options": {"tiny": {}}})
    assert not validator.is_valid({"datasets": [".."]})
    assert not validator.is_valid({"datasets": [".hidden"]})
    assert not validator.is_valid({"datasets": ["ml-100k"], "dataset_options": {"..": {}}})


# --- a dataset definition's keys and types ------------------------------------------------------------

@pytest.mark.parametrize(("extra", "message"), [
    ({"defualts": {}}, r"dataset 'x': unknown key 'defualts'; did you mean 'defaults'\?"),
    ({"files": [{"role": "all", "format": "u.data", "url": "http://h/u.data", "sha265": "0" * 64}]},
     r"dataset 'x': files\[0\]: unknown key 'sha265'; did you mean 'sha256'\?"),
    ({"defaults": {"kcore": 5}}, r"dataset 'x': defaults: unknown key 'kcore'; did you mean 'kcore_user'\?"),
    ({"expected": {"users": 3}}, r"dataset 'x': expected: unknown key 'users'; did you mean 'n_users'\?"),
])
def test_an_unknown_key_in_a_dataset_definition_is_refused(tmp_path: Path, extra: dict, message: str) -> None:
    """Before: ignored silently (a misspelt checksum meant an unverified download, a misspelt
    'defaults' the catalog's preprocessing)."""
    path = tmp_path / "ds.json"
    path.write_text(json.dumps({**_spec(), **extra}))
    with pytest.raises(UserError, match=rf"ds\.json: {message}"):
        load_dataset_file(path)


@pytest.mark.parametrize(("extra", "message"), [
    ({"defaults": {"test_ratio": "0.2"}}, r"defaults: 'test_ratio' must be a JSON number, got \"0.2\""),
    ({"defaults": {"kcore_user": "5"}}, r"defaults: 'kcore_user' must be a JSON integer, got \"5\""),
    ({"defaults": {"min_rating": "4"}}, r"defaults: 'min_rating' must be a JSON number or null"),
    ({"defaults": {"kcore_item": True}}, r"defaults: 'kcore_item' must be a JSON integer, got true"),
    ({"defaults": []}, r"'defaults' must be a JSON object, got \[\]"),
    ({"expected": {"n_users": "x"}}, r"expected: 'n_users' must be a JSON integer or null"),
    ({"files": [{"role": "all", "format": "u.data", "url": "http://h/u.data", "sha256": 5}]},
     r"files\[0\]: 'sha256' must be a JSON string or null, got 5"),
    ({"files": [{"role": "all", "format": "u.data", "url": 5}]}, r"files\[0\]: 'url' must be a JSON string"),
    ({"files": [{"role": "all", "format": "u.data", "url": "http://h/u.data", "size": "big"}]},
     r"files\[0\]: 'size' must be a JSON integer or null"),
    ({"files": [{"role": "all", "format": ["u.data"], "url": "http://h/u.data"}]},
     r"files\[0\]: 'format' must be a JSON string"),
])
def test_a_value_of_the_wrong_type_names_its_key(tmp_path: Path, extra: dict, message: str) -> None:
    """Before: TypeError/AttributeError tracebacks (or a string ratio compared with a float later)."""
    path = tmp_path / "ds.json"
    path.write_text(json.dumps({**_spec(), **extra}))
    with pytest.raises(UserError, match=rf"ds\.json: dataset 'x': {message}"):
        load_dataset_file(path)

