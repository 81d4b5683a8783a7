"""docs/adding-a-dataset.md, step by step, on a tiny dataset in a new format that the test writes.

No network: the catalog entry's URL is never contacted; the file is placed in the raw folder and
prepared ``--offline``, which still verifies it by its checksum.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from onebp.cli import main
from onebp.data import catalog, parsers
from onebp.data.catalog import Dataset, Defaults, Expected, Input, RemoteFile
from onebp.data.download import digests
from onebp.data.split_format import load_split
from onebp.errors import UserError

REPO = Path(__file__).resolve().parent.parent.parent
N_USERS, N_ITEMS = 9, 14


def write_checkins(path: Path) -> int:
    """A tiny file in a format no parser knows yet: ``user;item;timestamp``, ids starting at 100.
    Returns the number of (unique) interactions written."""
    rng = np.random.default_rng(7)
    lines = ["# user;item;timestamp"]
    for u in range(N_USERS):
        items = rng.choice(N_ITEMS, size=int(rng.integers(4, 9)), replace=False)
        items[0] = u  # every item id below N_USERS occurs
        items[-1] = N_ITEMS - 1 - (u % (N_ITEMS - N_USERS))  # and every one above
        for i in dict.fromkeys(items.tolist()):
            lines.append(f"{100 + u};{500 + i};{1_600_000_000 + int(rng.integers(0, 10**6))}")
    path.write_text("\n".join(lines) + "\n")
    return len(lines) - 1


# Step 2: a parser for the new format (in the repository it would live in onebp/data/parsers.py).
def parse_checkins(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    try:
        frame = pd.read_csv(path, sep=";", comment="#", header=None, names=["user", "item", "timestamp"],
                            dtype=np.int64, engine="c")
    except ValueError:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line.startswith("#") and len(line.split(";")) != 3:
                raise UserError(f"{path.name}:{n}: expected 'user;item;timestamp', got {line!r}") from None
        raise
    return frame


@pytest.fixture
def checkins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Dataset, Path, int]:
    # Step 1: pin the file (size and sha256, computed as the guide says).
    source = tmp_path / "download" / "checkins.txt"
    source.parent.mkdir()
    n = write_checkins(source)
    pinned = digests(source)
    # Step 2: register the parser.
    monkeypatch.setitem(parsers.PARSERS, "checkins", parse_checkins)
    # Steps 3 and 4: the catalog entry with its expected statistics.
    entry = Dataset(
        name="tiny-checkins",
        description="test dataset for docs/adding-a-dataset.md",
        inputs=(Input("all", "checkins", RemoteFile("checkins.txt", "http://127.0.0.1:9/checkins.txt",
                                                    size=pinned["size"], sha256=pinned["sha256"])),),
        defaults=Defaults(split="temporal", test_ratio=0.25),
        expected=Expected(n_users=N_USERS, n_items=N_ITEMS, n_interactions=n),
        citation="none",
        licence="test data",
    )
    monkeypatch.setitem(catalog.CATALOG, entry.name, entry)
    return entry, source, n


def place(raw: Path, entry: Dataset, data: bytes) -> None:
    (raw / entry.name).mkdir(parents=True, exist_ok=True)
    (raw / entry.name / entry.inputs[0].file.filename).write_bytes(data)


def test_prepare_the_new_dataset_offline(tmp_path: Path, checkins, capsys: pytest.CaptureFixture) -> None:
    entry, source, n = checkins
    raw, out = tmp_path / "raw", tmp_path / "splits" / entry.name
    place(raw, entry, source.read_bytes())
    assert main(["data", "prepare", "--dataset", entry.name, "--raw-dir", str(raw), "--out", str(out),
                 "--offline"]) == 0

    split = load_split(out)
    assert (split.n_users, split.n_items) == (N_USERS, N_ITEMS)
    assert sum(len(p) for p in split.parts.values()) == n
    meta = json.loads((out / "meta.json").read_text())["provenance"]
    assert meta["split"]["kind"] == "temporal" and meta["split"]["test_ratio"] == 0.25  # the entry's defaults
    assert meta["files"][0]["verified"] and meta["files"][0]["actual"]["sha256"] == entry.inputs[0].file.sha256
    stats = json.loads((out / "stats.json").read_text())
    assert stats["all"]["n_interactions"] == n and stats["parts"]["test"]["n_interactions"] > 0

    # Step 4: the statistics table compares the split with the entry's Expected figures.
    capsys.readouterr()
    assert main(["data", "stats", "--root", str(tmp_path / "splits")]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if entry.name in line)
    assert " ok " in f"{row} " and "DIFF" not in row, row


def test_a_file_that_does_not_match_the_checksum_is_refused(tmp_path: Path, checkins,
                                                            capsys: pytest.CaptureFixture) -> None:
    entry, source, _ = checkins
    raw = tmp_path / "raw"
    place(raw, entry, source.read_bytes().replace(b"100;", b"101;", 1))
    assert main(["data", "prepare", "--dataset", entry.name, "--raw-dir", str(raw), "--out",
                 str(tmp_path / "out"), "--offline"]) == 2
    assert "checkins.txt" in capsys.readouterr().err
    assert not (tmp_path / "out" / "meta.json").exists()


def test_wrong_expected_statistics_are_flagged(tmp_path: Path, checkins, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture) -> None:
    entry, source, n = checkins
    monkeypatch.setitem(catalog.CATALOG, entry.name,
                        Dataset(**{**entry.__dict__, "expected": Expected(N_USERS + 1, N_ITEMS, n)}))
    raw = tmp_path / "raw"
    place(raw, entry, source.read_bytes())
    assert main(["data", "prepare", "--dataset", entry.name, "--raw-dir", str(raw), "--out",
                 str(tmp_path / "s" / "x"), "--offline"]) == 0
    capsys.readouterr()
    assert main(["data", "stats", "--root", str(tmp_path / "s")]) == 0
    assert f"DIFF: users {N_USERS} vs {N_USERS + 1}" in capsys.readouterr().out


def test_the_parser_names_a_malformed_line(tmp_path: Path) -> None:
    bad = tmp_path / "checkins.txt"
    bad.write_text("# user;item;timestamp\n1;2;3\n4;5\n")
    with pytest.raises(UserError, match=r"checkins.txt:3: expected 'user;item;timestamp'"):
        parse_checkins(bad)


def test_the_workflow_accepts_the_new_name(checkins) -> None:
    # Step 6: the name can go into the config's datasets.
    sys.path.insert(0, str(REPO / "workflow"))
    import onebp_plan

    cfg = json.loads(json.dumps(yaml.safe_load((REPO / "config.yaml").read_text())))
    cfg.update(datasets=["tiny-checkins"], methods=["onebp"], sweeps=[], seeds=[0], params={})
    plan = onebp_plan.build(cfg)
    assert plan.split_dir("tiny-checkins", "clean").startswith("data/splits/tiny-checkins/clean-")
    assert "--split" not in plan.prepare_cli("tiny-checkins", "clean")  # the entry's default applies
