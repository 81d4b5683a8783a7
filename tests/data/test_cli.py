"""``onebp data`` commands end to end on tiny files (a local HTTP server or an offline raw dir)."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import threading
import zipfile
from functools import partial

import numpy as np
import pytest

from onebp.cli import main
from onebp.data import catalog
from onebp.data.catalog import Dataset, Expected, Input, Member, RemoteFile
from onebp.data.split_format import load_split


def tiny_udata(n_users: int = 12, n_items: int = 15, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    lines = []
    for u in range(1, n_users + 1):
        for i in rng.choice(np.arange(1, n_items + 1), size=int(rng.integers(3, 10)), replace=False):
            lines.append(f"{u}\t{i}\t{rng.integers(1, 6)}\t{880000000 + int(rng.integers(0, 10**6))}")
    return ("\n".join(lines) + "\n").encode()


def tiny_zip(udata: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ml-100k/u.data", udata)
        zf.writestr("ml-100k/README", "tiny")
    return buf.getvalue()


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


@pytest.fixture
def http_dir(tmp_path):
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def run(*args: str) -> int:
    return main(["data", *args])


def test_prepare_custom_url_through_http(http_dir, tmp_path, capsys):
    root, url = http_dir
    udata = tiny_udata()
    archive = tiny_zip(udata)
    (root / "ml-100k.zip").write_bytes(archive)
    raw, out = tmp_path / "raw", tmp_path / "splits" / "tiny"
    args = ["prepare", "--dataset", "tiny", "--url", f"{url}/ml-100k.zip", "--sha256", sha(archive),
            "--format", "ml-100k-zip", "--raw-dir", str(raw), "--out", str(out), "--retries", "1", "--backoff", "0"]
    assert run(*args, "--valid-ratio", "0.1", "--seed", "3") == 0
    split = load_split(out)
    n_lines = len(udata.splitlines())
    assert sum(len(p) for p in split.parts.values()) == n_lines
    assert split.n_users == 12 and set(split.parts) == {"train", "valid", "test"}
    meta = json.loads((out / "meta.json").read_text())
    prov = meta["provenance"]
    assert prov["files"][0]["verified"] and prov["files"][0]["actual"]["sha256"] == sha(archive)
    assert prov["split"] == {**prov["split"], "kind": "ratio", "seed": 3, "valid_ratio": 0.1, "test_ratio": 0.2}
    stats = json.loads((out / "stats.json").read_text())
    assert stats["all"]["n_interactions"] == n_lines
    assert set(stats["parts"]["train"]["user_degree"]) == {"min", "median", "mean", "max"}
    assert (out / "user_map.tsv").read_text().startswith("new_id\toriginal_id\n0\t1\n")
    assert (raw / "tiny" / "ml-100k.zip").read_bytes() == archive

    # Same seed -> same bytes; prepared again from the verified raw file, offline.
    before = (out / "test.tsv").read_bytes()
    assert run(*args, "--valid-ratio", "0.1", "--seed", "3", "--offline") == 0
    assert (out / "test.tsv").read_bytes() == before

    capsys.readouterr()
    assert run("stats", "--root", str(tmp_path / "splits")) == 0
    assert "tiny" in capsys.readouterr().out


def test_prepare_catalog_entry_offline_with_member(tmp_path, monkeypatch, capsys):
    """A catalog entry (replaced for the test) prepared offline from a placed u.data; the table flags
    the difference from the published statistics."""
    udata = tiny_udata(seed=1)
    entry = Dataset(
        name="ml-tiny",
        description="test",
        inputs=(Input("all", "u.data", RemoteFile(
            "ml-100k.zip", "http://127.0.0.1:9/ml-100k.zip", sha256="0" * 64,
            member=Member("ml-100k/u.data", "u.data", sha256=sha(udata)))),),
        expected=Expected(12, 999, len(udata.splitlines())),
    )
    monkeypatch.setitem(catalog.CATALOG, "ml-tiny", entry)
    raw = tmp_path / "raw"
    (raw / "ml-tiny").mkdir(parents=True)
    (raw / "ml-tiny" / "u.data").write_bytes(udata)
    for kind in ("temporal", "loo-latest", "loo-random"):
        out = tmp_path / "s" / kind
        assert run("prepare", "--dataset", "ml-tiny", "--raw-dir", str(raw), "--out", str(out),
                   "--offline", "--split", kind) == 0
        assert json.loads((out / "meta.json").read_text())["provenance"]["split"]["kind"] == kind
    capsys.readouterr()
    assert run("stats", "--root", str(tmp_path / "s")) == 0
    table = capsys.readouterr().out
    assert table.count("DIFF: items") == 3, table

    # k-core and rating threshold are applied and recorded.
    out = tmp_path / "k"
    assert run("prepare", "--dataset", "ml-tiny", "--raw-dir", str(raw), "--out", str(out), "--offline",
               "--kcore-user", "3", "--kcore-item", "3", "--min-rating", "2") == 0
    split = load_split(out)
    every = np.concatenate(list(split.parts.values()))
    assert len(every) > 0 and np.bincount(every[:, 0]).min() >= 3 and np.bincount(every[:, 1]).min() >= 3
    prov = json.loads((out / "meta.json").read_text())["provenance"]
    assert prov["preprocessing"]["kcore_user"] == 3 and prov["preprocessing"]["min_rating"] == 2
    c = prov["counts"]
    assert c["raw"] > c["after_min_rating"] > c["after_kcore"] > 0


def test_unverified_offline_file_needs_flag_and_is_recorded(tmp_path, capsys):
    raw = tmp_path / "raw"
    (raw / "mine").mkdir(parents=True)
    (raw / "mine" / "u.data").write_bytes(tiny_udata())
    base = ["prepare", "--dataset", "mine", "--url", "http://127.0.0.1:9/u.data", "--format", "u.data",
            "--raw-dir", str(raw), "--out", str(tmp_path / "out"), "--offline"]
    assert run(*base) == 2
    assert "--allow-unverified" in capsys.readouterr().err
    assert not (tmp_path / "out" / "meta.json").exists()
    assert run(*base, "--allow-unverified") == 0
    prov = json.loads((tmp_path / "out" / "meta.json").read_text())["provenance"]
    assert prov["allow_unverified"] is True
    assert prov["files"][0]["actual"]["sha256"] == sha(tiny_udata())


def test_import_onebp_csv(tmp_path, capsys):
    rng = np.random.default_rng(0)
    rows = {(int(u), int(i)) for u, i in rng.integers(0, [20, 30], size=(300, 2))}
    rows = sorted(rows)
    test = rows[::5]
    train = [r for r in rows if r not in set(test)]
    for name, part in (("tr.csv", train), ("te.csv", test)):
        (tmp_path / name).write_text("user,item,rating\n" + "".join(f"{u},{i},4\n" for u, i in part))
    out = tmp_path / "s" / "onebp"
    assert run("import", "--format", "onebp-csv", "--train", str(tmp_path / "tr.csv"),
               "--test", str(tmp_path / "te.csv"), "--out", str(out)) == 0
    split = load_split(out)
    assert split.n_users == 1 + max(u for u, _ in rows) and split.n_items == 1 + max(i for _, i in rows)
    assert len(split.parts["train"]) == len(train) and len(split.parts["test"]) == len(test)

    out_v = tmp_path / "s" / "onebp-valid"
    args = ["import", "--format", "onebp-csv", "--train", str(tmp_path / "tr.csv"), "--test",
            str(tmp_path / "te.csv"), "--out", str(out_v), "--valid-ratio", "0.2", "--seed", "0"]
    assert run(*args) == 0
    v = load_split(out_v)
    assert len(v.parts["train"]) + len(v.parts["valid"]) == len(train) and len(v.parts["valid"]) > 0
    assert (v.parts["test"] == split.parts["test"]).all()
    first = (out_v / "valid.tsv").read_bytes()
    assert run(*args) == 0 and (out_v / "valid.tsv").read_bytes() == first


def test_import_lightgcn_keeps_empty_users(tmp_path):
    (tmp_path / "train.txt").write_text("0 0 1 2\n1 2 3\n2\n3 1 4\n")
    (tmp_path / "test.txt").write_text("0 3\n1 0\n2 4\n3 0\n")
    out = tmp_path / "lg"
    assert run("import", "--format", "lightgcn", "--train", str(tmp_path / "train.txt"),
               "--test", str(tmp_path / "test.txt"), "--out", str(out)) == 0
    split = load_split(out)
    assert split.n_users == 4 and split.n_items == 5
    # User 2 has no training item: its test item is dropped and counted.
    assert {tuple(r) for r in split.parts["test"].tolist()} == {(0, 3), (1, 0), (3, 0)}
    stats = json.loads((out / "stats.json").read_text())
    assert stats["dropped"]["users_without_train"] == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["prepare", "--dataset", "nope", "--raw-dir", "r", "--out", "o"], "known datasets: amazon-book"),
        (["prepare", "--dataset", "ml-100k", "--raw-dir", "r", "--out", "o", "--split", "odd"], "unknown split kind"),
        (["download", "--dataset", "ml-100k", "--raw-dir", "{tmp}", "--offline"], "offline"),
        (["prepare", "--dataset", "ml-100k", "--raw-dir", "r", "--out", "o", "--split", "given"], "no published"),
        (["import", "--format", "csv", "--train", "a", "--test", "b", "--out", "o"], "unknown import format"),
        (["stats", "--root", "{tmp}/none"], "no such directory"),
    ],
)
def test_user_errors(tmp_path, capsys, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert run(*args) == 2
    err = capsys.readouterr().err
    assert err.startswith("onebp: error:") and message in err and err.count("\n") == 1


def test_dataset_file_and_base_url(http_dir, tmp_path, monkeypatch):
    root, url = http_dir
    udata = tiny_udata(seed=2)
    (root / "u.data").write_bytes(udata)
    spec = {"name": "deffile", "files": [{"role": "all", "format": "u.data", "url": "http://example.invalid/u.data",
                                          "sha256": sha(udata)}],
            "defaults": {"split": "loo-random"}, "expected": {"n_users": 12}}
    (tmp_path / "ds.json").write_text(json.dumps(spec))
    out = tmp_path / "s" / "deffile"
    # --base-url redirects the definition's URL to the local server; the checksum stays.
    assert run("prepare", "--dataset-file", str(tmp_path / "ds.json"), "--base-url", url, "--raw-dir",
               str(tmp_path / "raw"), "--out", str(out), "--retries", "0") == 0
    prov = json.loads((out / "meta.json").read_text())["provenance"]
    assert prov["split"]["kind"] == "loo-random" and prov["files"][0]["url"] == f"{url}/u.data"
    assert load_split(out).n_users == 12


def test_empty_raw_file_is_a_user_error(tmp_path, capsys):
    (tmp_path / "raw" / "e").mkdir(parents=True)
    (tmp_path / "raw" / "e" / "u.data").write_bytes(b"")
    assert run("prepare", "--dataset", "e", "--url", "http://127.0.0.1:9/u.data", "--format", "u.data",
               "--raw-dir", str(tmp_path / "raw"), "--out", str(tmp_path / "o"), "--offline",
               "--allow-unverified") == 2
    assert "u.data: no interactions (empty file)" in capsys.readouterr().err
