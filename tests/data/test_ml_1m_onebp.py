"""The ``ml-1m-onebp`` catalog entry end to end, on a tiny split in the same format.

The real files (800,193 + 200,016 rows) are never read here: the test writes a tiny
``1m1_train.csv``/``1m1_test.csv`` pair in the OneBP CSV format, pins the entry to those files'
digests and counts (everything else — file names, roles, format, the missing URL of the train file,
the default split — is the real entry's), places them in ``RAW_DIR/ml-1m-onebp/`` and prepares them
with the exact command lines the workflow runs for protocols paper and clean.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from onebp.cli import main
from onebp.data import catalog
from onebp.data.catalog import Expected
from onebp.data.download import digests
from onebp.data.split_format import load_split

REPO = Path(__file__).resolve().parent.parent.parent
NAME = "ml-1m-onebp"
N_USERS, N_ITEMS = 12, 20


def write_split(folder: Path) -> tuple[set, set]:
    """``1m1_train.csv`` and ``1m1_test.csv`` with 0-based ids; every user and item occurs, and the
    last item occurs only in test (as 24 items do in the real split). Returns the (user, item) pairs."""
    rng = np.random.default_rng(3)
    train, test = set(), set()
    for u in range(N_USERS):
        items = rng.choice(N_ITEMS - 1, size=8, replace=False).tolist()
        items[0] = u  # every item below N_USERS occurs in train
        items[1] = N_USERS + u % (N_ITEMS - 1 - N_USERS)  # and every one above, except the last
        train.update((u, i) for i in items)
        test.add((u, int(rng.choice([i for i in range(N_ITEMS - 1) if (u, i) not in train]))))
    test.add((0, N_ITEMS - 1))
    folder.mkdir(parents=True, exist_ok=True)
    for name, pairs in (("1m1_train.csv", train), ("1m1_test.csv", test)):
        rows = [f"{u},{i},{1 + (u + i) % 5}" for u, i in sorted(pairs, key=lambda p: (p[0], -p[1]))]
        (folder / name).write_text("user,item,rating\n" + "\n".join(rows) + "\n")
    return train, test


@pytest.fixture
def entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, set, set]:
    """The real entry, pinned to the tiny files; returns the raw folder and the written pairs."""
    raw = tmp_path / "raw"
    train, test = write_split(raw / NAME)
    real = catalog.CATALOG[NAME]
    inputs = tuple(dataclasses.replace(inp, file=dataclasses.replace(
        inp.file, **{k: v for k, v in digests(raw / NAME / inp.file.filename).items() if k in ("size", "sha256")}))
        for inp in real.inputs)
    expected = Expected(N_USERS, N_ITEMS, len(train) + len(test), len(train), len(test))
    monkeypatch.setitem(catalog.CATALOG, NAME, dataclasses.replace(real, inputs=inputs, expected=expected))
    return raw, train, test


def pairs(part: np.ndarray) -> set:
    return {(int(u), int(i)) for u, i in part}


def workflow_prepare_args(protocol: str) -> list[str]:
    """What the workflow's ``prepare`` job passes for ``ml-1m-onebp`` under ``protocol``."""
    sys.path.insert(0, str(REPO / "workflow"))
    import onebp_plan

    cfg = json.loads(json.dumps(yaml.safe_load((REPO / "config.yaml").read_text())))
    cfg.update(datasets=[NAME], methods=["onebp"], sweeps=[], seeds=[0])
    plan = onebp_plan.build(cfg)
    return shlex.split(plan.source_args(NAME)) + shlex.split(plan.prepare_cli(NAME, protocol))


def test_the_entry_is_the_official_split_with_a_hand_placed_train_file() -> None:
    ds = catalog.CATALOG[NAME]
    files = {inp.role: inp.file for inp in ds.inputs}
    assert ds.has_given_split and ds.defaults.split == "given"
    assert files["train"].url == ""  # no public download: never fetched
    assert files["test"].url.endswith("/studentcej/OneBP/main/data/1m1_test.csv")
    assert all(f.sha256 and f.size for f in files.values())  # both verified when placed
    e = ds.expected
    assert e.n_train + e.n_test == e.n_interactions


def test_protocol_paper_keeps_the_split_and_its_ids(tmp_path: Path, entry, capsys: pytest.CaptureFixture) -> None:
    raw, train, test = entry
    out = tmp_path / "splits" / NAME / "paper"
    args = workflow_prepare_args("paper")
    assert "--valid-ratio" not in args or args[args.index("--valid-ratio") + 1] in ("0", "0.0")
    assert main(["data", "prepare", *args, "--raw-dir", str(raw), "--offline", "--out", str(out)]) == 0

    split = load_split(out)
    assert (split.n_users, split.n_items) == (N_USERS, N_ITEMS)
    assert set(split.parts) == {"train", "test"}
    # The official ids are kept (every id occurs, so the remap is the identity): parity with the
    # official code compares the same users and items.
    assert pairs(split.parts["train"]) == train and pairs(split.parts["test"]) == test
    meta = json.loads((out / "meta.json").read_text())["provenance"]
    assert [f["verified"] for f in meta["files"]] == [True, True]

    capsys.readouterr()
    assert main(["data", "stats", "--root", str(tmp_path / "splits")]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if NAME in line)
    assert "DIFF" not in row and " ok" in row, row


def test_protocol_clean_carves_validation_from_train_only(tmp_path: Path, entry) -> None:
    raw, train, test = entry
    out = tmp_path / "clean"
    args = workflow_prepare_args("clean")
    assert float(args[args.index("--valid-ratio") + 1]) > 0
    assert main(["data", "prepare", *args, "--raw-dir", str(raw), "--offline", "--out", str(out)]) == 0

    split = load_split(out)
    valid = pairs(split.parts["valid"])
    assert valid and pairs(split.parts["test"]) == test  # the official test part, untouched
    assert pairs(split.parts["train"]) | valid == train and not pairs(split.parts["train"]) & valid


def test_a_missing_train_file_is_one_line_naming_it(tmp_path: Path, entry, capsys: pytest.CaptureFixture) -> None:
    raw, _, _ = entry
    (raw / NAME / "1m1_train.csv").unlink()
    # Without --offline, as the workflow's download job runs: there is nothing to download from.
    assert main(["data", "download", "--dataset", NAME, "--raw-dir", str(raw)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "1m1_train.csv" in err and "no public download" in err, err


def test_a_wrong_checksum_is_one_line_naming_the_file(tmp_path: Path, entry, capsys: pytest.CaptureFixture) -> None:
    raw, _, _ = entry
    path = raw / NAME / "1m1_test.csv"
    path.write_bytes(path.read_bytes().replace(b"\n0,", b"\n1,", 1))
    out = tmp_path / "out"
    assert main(["data", "prepare", "--dataset", NAME, "--raw-dir", str(raw), "--offline", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "1m1_test.csv" in err and "refusing" in err, err
    assert not (out / "meta.json").exists()
