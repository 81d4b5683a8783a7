"""Re-preparing or re-importing into an existing split folder builds the new split apart and swaps it
in only when complete: a failure half-way leaves the old split whole, and no file of the old one
(an id map, a validation part) survives into the new one."""

from __future__ import annotations

import errno
from pathlib import Path

import pandas as pd
import pytest

from onebp.cli import main
from onebp.data.prepare import import_split
from onebp.errors import UserError

TRAIN = "user,item,rating\n" + "".join(f"{u},{i},5\n" for u in range(6) for i in range(u, u + 5))
TEST = "user,item,rating\n0,9,5\n1,0,5\n2,0,5\n"


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _csvs(tmp_path: Path) -> tuple[str, str]:
    (tmp_path / "tr.csv").write_text(TRAIN)
    (tmp_path / "te.csv").write_text(TEST)
    return str(tmp_path / "tr.csv"), str(tmp_path / "te.csv")


def _prepare(tmp_path: Path, out: Path, *extra: str) -> int:
    raw = tmp_path / "raw" / "mine"
    raw.mkdir(parents=True, exist_ok=True)
    rows = [(u, i) for u in range(1, 12) for i in range(1, 12) if (u * 7 + i * 3) % 4]
    (raw / "u.data").write_text("".join(f"{u}\t{i}\t4\t{n}\n" for n, (u, i) in enumerate(rows)))
    return main(["data", "prepare", "--dataset", "mine", "--url", "file:///x/u.data", "--format", "u.data",
                 "--raw-dir", str(tmp_path / "raw"), "--offline", "--allow-unverified", "--out", str(out),
                 "--valid-ratio", "0.1", *extra])


def test_a_failure_half_way_through_a_reimport_keeps_the_old_split(tmp_path: Path, monkeypatch) -> None:
    """Before: the write happened in place; a full disk on the second part left meta.json gone, the old
    valid.tsv deleted, a new train.tsv and the old test.tsv: the old split destroyed, no new one."""
    train, test = _csvs(tmp_path)
    out = tmp_path / "split"
    import_split("onebp-csv", train, test, out, valid_ratio=0.2)
    before = _files(out)
    calls = {"n": 0}
    to_csv = pd.DataFrame.to_csv

    def disk_full_on_the_second_part(self, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            f.write("0\t1\n")
            raise OSError(errno.ENOSPC, "No space left on device")
        return to_csv(self, f, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_csv", disk_full_on_the_second_part)
    with pytest.raises(OSError, match="No space left"):
        import_split("onebp-csv", train, test, out, valid_ratio=0.0, seed=1)
    assert _files(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["split", "te.csv", "tr.csv"]  # no temp folder left


def test_importing_over_a_prepared_split_leaves_no_stale_id_maps(tmp_path: Path, capsys) -> None:
    """Before: user_map.tsv/item_map.tsv of the prepared split stayed next to the imported one."""
    out = tmp_path / "split"
    assert _prepare(tmp_path, out) == 0
    assert (out / "user_map.tsv").is_file() and (out / "valid.tsv").is_file()
    train, test = _csvs(tmp_path)
    import_split("onebp-csv", train, test, out)
    assert sorted(_files(out)) == ["meta.json", "stats.json", "test.tsv", "train.tsv"]


def _refused(capsys, rc: int) -> str:
    assert rc == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def test_out_that_is_a_file_or_under_a_file_is_one_line(tmp_path: Path, capsys) -> None:
    """Before: FileExistsError / NotADirectoryError tracebacks."""
    (tmp_path / "afile").write_text("keep me\n")
    assert "is not a directory" in _refused(capsys, _prepare(tmp_path, tmp_path / "afile"))
    line = _refused(capsys, _prepare(tmp_path, tmp_path / "afile" / "sub"))
    assert f"is under {tmp_path / 'afile'}" in line
    train, test = _csvs(tmp_path)
    with pytest.raises(UserError, match="afile: is not a directory"):
        import_split("onebp-csv", train, test, tmp_path / "afile")
    assert (tmp_path / "afile").read_text() == "keep me\n"


def test_a_folder_holding_other_files_is_not_replaced(tmp_path: Path, capsys) -> None:
    """The whole folder is replaced, so a folder with the user's own files in it is refused, not emptied."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me\n")
    assert "holds 'notes.txt', which is not part of a split" in _refused(capsys, _prepare(tmp_path, out))
    assert _files(out) == {"notes.txt": b"keep me\n"}


def test_a_split_the_workflow_wrote_can_be_prepared_again(tmp_path: Path) -> None:
    """A prepare job's output folder holds Snakemake's .snakemake_timestamp: re-preparing it by hand
    replaces it like any split, rather than refusing the stamp as a foreign file."""
    out = tmp_path / "split"
    assert _prepare(tmp_path, out) == 0
    (out / ".snakemake_timestamp").write_text("")
    before = _files(out)
    assert _prepare(tmp_path, out) == 0
    assert _files(out) == {k: v for k, v in before.items() if k != ".snakemake_timestamp"}
