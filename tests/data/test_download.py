"""Download and verification against a real HTTP server on 127.0.0.1 (no other network)."""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
import zipfile
from collections import Counter

import pytest

from onebp.data.catalog import Member, RemoteFile
from onebp.data.download import DownloadError, FetchOptions, digests, download, fetch_file
from onebp.errors import UserError

FAST = {"retries": 2, "backoff": 0.001, "timeout": 5.0}


class Server:
    """Serves ``files`` (path -> bytes); paths in ``truncate`` promise more bytes than they send;
    paths in ``stall_once`` send half their body, then stall (the first request only)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.truncate: set[str] = set()
        self.stall_once: set[str] = set()
        self.stall_seconds = 3.0
        self.release = threading.Event()
        self.hits: Counter[str] = Counter()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                outer.hits[self.path] += 1
                body = outer.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                promised = len(body) + 100 if self.path in outer.truncate else len(body)
                self.send_header("Content-Length", str(promised))
                self.end_headers()
                if self.path in outer.stall_once and outer.hits[self.path] == 1:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    outer.release.wait(outer.stall_seconds)  # the client's read times out meanwhile
                    self.close_connection = True
                    return
                self.wfile.write(body)
                self.close_connection = True

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_success_and_git_blob(server, tmp_path):
    data = b"1\t2\t3\t4\n" * 1000
    server.files["/a.txt"] = data
    blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    got = download(f"{server.url}/a.txt", tmp_path / "a.txt", sha256=sha(data), git_blob=blob, **FAST)
    assert (tmp_path / "a.txt").read_bytes() == data
    assert got == {"size": len(data), "sha256": sha(data), "git_blob": blob}
    assert leftovers(tmp_path) == ["a.txt"]


def test_checksum_mismatch_leaves_nothing_and_names_everything(server, tmp_path):
    server.files["/a.txt"] = b"hello"
    wrong = "0" * 64
    with pytest.raises(DownloadError) as exc:
        download(f"{server.url}/a.txt", tmp_path / "a.txt", sha256=wrong, **FAST)
    msg = str(exc.value)
    assert f"{server.url}/a.txt" in msg and wrong in msg and sha(b"hello") in msg
    assert leftovers(tmp_path) == []


def test_truncated_body_is_retried_then_fails(server, tmp_path):
    data = b"x" * 5000
    server.files["/t.bin"] = data
    server.truncate.add("/t.bin")
    with pytest.raises(DownloadError, match="after 3 attempts"):
        download(f"{server.url}/t.bin", tmp_path / "t.bin", sha256=sha(data), **FAST)
    assert server.hits["/t.bin"] == 3  # 1 + 2 retries
    assert leftovers(tmp_path) == []


def test_read_timeout_mid_body_is_retried(server, tmp_path):
    """A server that sends half the body and then stalls: the read times out, the transfer is
    retried like a truncated one, and the second request gives the verified file."""
    data = b"y" * 200_000
    server.files["/s.bin"] = data
    server.stall_once.add("/s.bin")
    got = download(f"{server.url}/s.bin", tmp_path / "s.bin", sha256=sha(data),
                   **{**FAST, "timeout": 0.5})
    assert got["sha256"] == sha(data)
    assert (tmp_path / "s.bin").read_bytes() == data
    assert server.hits["/s.bin"] == 2
    assert leftovers(tmp_path) == ["s.bin"]


def test_http_error_names_url(server, tmp_path):
    with pytest.raises(DownloadError, match="404"):
        download(f"{server.url}/missing", tmp_path / "m", sha256="0" * 64, **FAST)
    assert leftovers(tmp_path) == []


def test_unknown_checksum_refused_unless_allowed(server, tmp_path):
    server.files["/u.data"] = b"1\t1\t5\t0\n"
    rf = RemoteFile("u.data", f"{server.url}/u.data")
    with pytest.raises(UserError, match="allow-unverified"):
        fetch_file(rf, tmp_path, FetchOptions(**FAST))
    assert leftovers(tmp_path) == []
    rec = fetch_file(rf, tmp_path, FetchOptions(allow_unverified=True, **FAST))
    assert rec["allow_unverified"] is True and rec["verified"] is False
    assert rec["actual"]["sha256"] == sha(b"1\t1\t5\t0\n")


def test_verified_file_is_not_fetched_again(server, tmp_path):
    data = b"payload"
    server.files["/f.txt"] = data
    rf = RemoteFile("f.txt", f"{server.url}/f.txt", size=len(data), sha256=sha(data))
    first = fetch_file(rf, tmp_path, FetchOptions(**FAST))
    second = fetch_file(rf, tmp_path, FetchOptions(**FAST))
    assert server.hits["/f.txt"] == 1
    assert first["origin"] == "downloaded" and second["origin"] == "present" and second["verified"]


def test_offline_verifies_placed_files(tmp_path):
    data = b"placed"
    (tmp_path / "f.txt").write_bytes(data)
    good = RemoteFile("f.txt", "http://127.0.0.1:9/f.txt", sha256=sha(data))
    rec = fetch_file(good, tmp_path, FetchOptions(offline=True, **FAST))
    assert rec["verified"] and rec["origin"] == "present"

    bad = RemoteFile("f.txt", "http://127.0.0.1:9/f.txt", sha256="1" * 64)
    with pytest.raises(UserError) as exc:
        fetch_file(bad, tmp_path, FetchOptions(offline=True, **FAST))
    assert "1" * 64 in str(exc.value) and sha(data) in str(exc.value)
    rec = fetch_file(bad, tmp_path, FetchOptions(offline=True, allow_unverified=True, **FAST))
    assert rec["allow_unverified"] and rec["actual"]["sha256"] == sha(data)

    missing = RemoteFile("nope.txt", "http://127.0.0.1:9/nope.txt", sha256="1" * 64)
    with pytest.raises(UserError, match="offline"):
        fetch_file(missing, tmp_path, FetchOptions(offline=True, **FAST))


def test_offline_archive_member_placed_alone(tmp_path):
    member_data = b"1\t2\t3\t4\n"
    (tmp_path / "u.data").write_bytes(member_data)
    rf = RemoteFile(
        "ml-100k.zip", "http://127.0.0.1:9/ml-100k.zip", sha256="2" * 64,
        member=Member("ml-100k/u.data", "u.data", sha256=sha(member_data)),
    )
    rec = fetch_file(rf, tmp_path, FetchOptions(offline=True, **FAST))
    assert rec["verified"] and rec["path"].endswith("u.data")


def test_digests_git_blob_matches_git(tmp_path):
    # `git hash-object` of "hello\n" is ce013625030ba8dba906f756967f9e9ca394464a.
    (tmp_path / "h").write_bytes(b"hello\n")
    assert digests(tmp_path / "h")["git_blob"] == "ce013625030ba8dba906f756967f9e9ca394464a"


def _corrupt_zip(method: int) -> bytes:
    """A zip whose compressed member ``d/u.data`` is damaged (its central directory is intact)."""
    data = "".join(f"{u}\t{u % 7}\t4\t{u * 13}\n" for u in range(3000)).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        zf.writestr("d/u.data", data)
    raw = bytearray(buf.getvalue())
    start = 30 + len("d/u.data")  # local header + name: the compressed bytes follow
    raw[start + 20:start + 60] = b"\xff" * 40
    return bytes(raw)


@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_a_damaged_archive_member_says_delete_and_download_again(tmp_path, method):
    """Before: zlib.error / OSError / LZMAError tracebacks from zipfile."""
    archive = _corrupt_zip(method)
    (tmp_path / "a.zip").write_bytes(archive)
    rf = RemoteFile("a.zip", "http://127.0.0.1:9/a.zip", sha256=sha(archive), member=Member("d/u.data", "u.data"))
    with pytest.raises(UserError, match=r"a\.zip: cannot extract 'd/u\.data' .*delete it and download it again"):
        fetch_file(rf, tmp_path, FetchOptions(offline=True, **FAST))
    assert leftovers(tmp_path) == ["a.zip"]


def test_a_raw_folder_under_a_file_is_refused_before_downloading(server, tmp_path):
    """Before: NotADirectoryError traceback (online)."""
    server.files["/f.txt"] = b"payload"
    (tmp_path / "afile").write_text("x")
    rf = RemoteFile("f.txt", f"{server.url}/f.txt", sha256=sha(b"payload"))
    with pytest.raises(UserError, match=r"is under .*afile, which is not a directory"):
        fetch_file(rf, tmp_path / "afile" / "ds", FetchOptions(**FAST))
    assert server.hits["/f.txt"] == 0


def test_a_folder_where_the_raw_file_belongs_is_refused_before_downloading(server, tmp_path):
    """Before: the whole file was downloaded, then IsADirectoryError on the rename."""
    server.files["/f.txt"] = b"payload"
    (tmp_path / "f.txt").mkdir()
    rf = RemoteFile("f.txt", f"{server.url}/f.txt", sha256=sha(b"payload"))
    with pytest.raises(UserError, match=r"f\.txt: is a directory where the raw file belongs"):
        fetch_file(rf, tmp_path, FetchOptions(**FAST))
    assert server.hits["/f.txt"] == 0
