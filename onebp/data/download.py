"""Fetching and verifying raw files: ``RAW_DIR/<dataset>/<filename>``.

* Download: ``requests`` with a urllib3 ``Retry`` (backoff) for connection errors and 5xx/429; the body
  is streamed into a temporary file in the target folder (tqdm bar only on a terminal), its size and
  checksum are verified, and only then is it renamed into place. A transfer shorter than the promised
  Content-Length (urllib3 raises, and we also count the bytes) is retried with the same backoff, then
  fails. A read that times out or a connection lost mid-body is retried the same way. Any failure
  removes the temporary file, so no unverified file is ever left behind.
* Offline (``offline=True``, for air-gapped clusters): files already placed in the raw folder are used
  after the same verification, and nothing is fetched.
* A present file that verifies is never fetched again. A present file whose checksum is unknown or
  differs is refused unless ``allow_unverified``; the acceptance is then recorded (with the actual
  checksum) in the record that goes into the split's provenance.
* Archives: when the entry names a zip member, either the archive or the extracted member (e.g.
  ``u.data`` for ML-100K) may be placed; the member is verified against its pinned checksum.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import sys
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from onebp.atomic import atomic_path
from onebp.data.catalog import Dataset, RemoteFile
from onebp.errors import UserError
from onebp.safe_paths import safe_name

CHUNK = 1 << 20


class DownloadError(UserError):
    """A download failed (network, HTTP status, truncated transfer, checksum mismatch)."""


@dataclass(frozen=True)
class FetchOptions:
    offline: bool = False
    allow_unverified: bool = False
    retries: int = 4
    backoff: float = 1.0  # seconds; urllib3 sleeps backoff * 2**(attempt-1). Tests make it tiny.
    timeout: float = 60.0


def digests(path: str | os.PathLike) -> dict[str, Any]:
    """sha256 and git blob id of a file in one pass."""
    size = os.path.getsize(path)
    sha256 = hashlib.sha256()
    blob = hashlib.sha1(b"blob " + str(size).encode() + b"\0")
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            sha256.update(chunk)
            blob.update(chunk)
    return {"size": size, "sha256": sha256.hexdigest(), "git_blob": blob.hexdigest()}


def _expected(size: int | None, sha256: str | None, git_blob: str | None) -> dict[str, Any]:
    return {k: v for k, v in (("size", size), ("sha256", sha256), ("git_blob", git_blob)) if v is not None}


def _mismatch(actual: dict[str, Any], expected: dict[str, Any]) -> str | None:
    """A description of the first difference between actual and expected digests, or None."""
    for key in ("size", "sha256", "git_blob"):
        if key in expected and str(expected[key]).lower() != str(actual[key]).lower():
            return f"expected {key} {expected[key]}, actual {key} {actual[key]}"
    return None


def _has_checksum(expected: dict[str, Any]) -> bool:
    return "sha256" in expected or "git_blob" in expected


def make_session(retries: int, backoff: float) -> requests.Session:
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=backoff,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"GET", "HEAD"}),
        raise_on_status=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    size: int | None = None,
    sha256: str | None = None,
    git_blob: str | None = None,
    allow_unverified: bool = False,
    retries: int = 4,
    backoff: float = 1.0,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Download ``url`` to ``dest`` atomically after verification; returns the actual digests.

    Without a known checksum the download is refused unless ``allow_unverified`` (the caller records it).
    """
    expected = _expected(size, sha256, git_blob)
    if not _has_checksum(expected) and not allow_unverified:
        raise DownloadError(f"{url}: no checksum known for this file; pass --allow-unverified to accept it")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    session = make_session(retries, backoff)
    last_error = ""
    # urllib3's Retry covers failures before the body; a body cut short is retried here.
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            # Checked before the rename: a short or wrong body never becomes `dest`.
            with atomic_path(dest, suffix=".part") as tmp:
                with open(tmp, "wb") as out:
                    got, promised = _stream(session, url, out, timeout)
                if promised is not None and got != promised:
                    raise _Truncated(f"received {got} of {promised} bytes")
                actual = digests(tmp)
                problem = _mismatch(actual, expected)
                if problem:
                    raise DownloadError(f"{url}: checksum mismatch: {problem}; nothing was kept")
            return actual
        except _Truncated as exc:
            last_error = str(exc)
        except requests.exceptions.HTTPError as exc:
            raise DownloadError(f"{url}: HTTP {exc.response.status_code} {exc.response.reason}") from None
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError) as exc:
            last_error = f"transfer cut short ({type(exc).__name__})"
        except requests.exceptions.RequestException as exc:
            # Connection-level failures were already retried by urllib3's Retry.
            raise DownloadError(f"{url}: {type(exc).__name__}: {exc}") from None
    raise DownloadError(f"{url}: download failed after {retries + 1} attempts: {last_error}; nothing was kept")


class _Truncated(Exception):
    pass


def _stream(session: requests.Session, url: str, out, timeout: float) -> tuple[int, int | None]:
    from tqdm import tqdm

    # identity: the bytes on disk are the bytes served, and Content-Length counts exactly those
    # (with gzip transfer-encoding it would count compressed bytes and the check below would misfire).
    with session.get(url, stream=True, timeout=timeout, headers={"Accept-Encoding": "identity"}) as resp:
        resp.raise_for_status()
        promised = resp.headers.get("Content-Length")
        promised = int(promised) if promised and promised.isdigit() else None
        if resp.headers.get("Content-Encoding", "identity").lower() != "identity":
            promised = None  # urllib3 still enforces the length of the encoded body
        got = 0
        with tqdm(
            total=promised,
            unit="B",
            unit_scale=True,
            desc=os.path.basename(url),
            disable=not sys.stderr.isatty(),
            leave=False,
        ) as bar:
            try:
                for chunk in resp.iter_content(CHUNK):
                    out.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                # A server that stalls mid-body: requests raises ConnectionError (wrapping urllib3's
                # ReadTimeoutError) from the body iterator, after urllib3's Retry is out of the
                # picture. It is a body cut short, so it is retried like one.
                raise _Truncated(f"read timed out or connection lost after {got} bytes "
                                 f"({type(exc).__name__})") from None
    return got, promised


def fetch_file(rf: RemoteFile, folder: str | os.PathLike, opts: FetchOptions) -> dict[str, Any]:
    """Make ``folder/<rf.filename>`` (or, for an archive, its extracted member) present and verified.

    Returns a provenance record: url, expected and actual digests, how it was obtained, whether it was
    verified, and ``allow_unverified`` when it was accepted without verification. The record's ``path``
    is the file to parse (the extracted member for archives).
    """
    folder = Path(folder)
    # A plain name, never a path: a definition's filename cannot write outside the raw folder.
    path = folder / safe_name(rf.filename, "raw file name")
    expected = _expected(rf.size, rf.sha256, rf.git_blob)
    record: dict[str, Any] = {"filename": rf.filename, "url": rf.url, "expected": expected}
    member = rf.member
    member_path = folder / member.filename if member else None
    _check_targets(folder, [path] + ([member_path] if member_path is not None else []))

    if path.is_file():
        record.update(_accept_present(path, expected, rf.url, opts))
    elif member_path is not None and member_path.is_file():
        # Only the extracted member was placed (e.g. u.data): verify it against its pinned checksum.
        m_expected = _expected(member.size, member.sha256, None)
        rec = _accept_present(member_path, m_expected, f"{rf.url} (member {member.path})", opts)
        return {
            "filename": member.filename,
            "url": rf.url,
            "placed_instead_of": f"{rf.filename} (archive member {member.path})",
            "expected": m_expected,
            "expected_note": member.note,
            **rec,
            "path": str(member_path),
        }
    elif not rf.url:
        # A file with no public download (e.g. ml-1m-onebp's rebuilt train file): refuse, naming it.
        raise UserError(f"{path} is missing and has no public download; place it there by hand (docs/data.md)")
    elif opts.offline:
        raise UserError(
            f"offline: {path} is missing; place the file from {rf.url} there"
            + (f" (or its member {member.path} as {member_path})" if member else "")
        )
    else:
        actual = download(
            rf.url,
            path,
            size=rf.size,
            sha256=rf.sha256,
            git_blob=rf.git_blob,
            allow_unverified=opts.allow_unverified,
            retries=opts.retries,
            backoff=opts.backoff,
            timeout=opts.timeout,
        )
        verified = _has_checksum(expected)
        record.update({"actual": actual, "origin": "downloaded", "verified": verified})
        if not verified:
            record["allow_unverified"] = True
    if member is None:
        return {**record, "path": str(path)}
    return {**record, **_extract(path, member, folder)}


def _check_targets(folder: Path, targets: list[Path]) -> None:
    """Refuse, before anything is fetched, a raw folder under a file or a raw file's name taken by a
    folder (else a whole download ends in NotADirectoryError/IsADirectoryError tracebacks)."""
    for above in (folder, *folder.parents):
        if above.exists() or above.is_symlink():
            if not above.is_dir():
                raise UserError(f"{folder}: raw folder {'is' if above == folder else f'is under {above}, which is'} "
                                "not a directory (a file); choose another --raw-dir")
            break
    for target in targets:
        if target.is_dir():
            raise UserError(f"{target}: is a directory where the raw file belongs; move it away")


def _accept_present(path: Path, expected: dict[str, Any], label: str, opts: FetchOptions) -> dict[str, Any]:
    actual = digests(path)
    problem = _mismatch(actual, expected)
    if problem is None and _has_checksum(expected):
        return {"actual": actual, "origin": "present", "verified": True}
    why = problem or "its checksum is unknown"
    if not opts.allow_unverified:
        raise UserError(
            f"{path}: refusing unverified file ({label}): {why}; delete it, or pass --allow-unverified "
            "to use it anyway (recorded in the split's provenance)"
        )
    return {"actual": actual, "origin": "present", "verified": False, "allow_unverified": True, "problem": why}


def _extract(archive: Path, member, folder: Path) -> dict[str, Any]:
    """Extract the interactions member atomically next to the archive (the archive was verified)."""
    target = folder / member.filename
    try:
        with zipfile.ZipFile(archive) as zf:
            data = zf.read(member.path)
    except KeyError:
        raise UserError(f"{archive}: archive has no member {member.path!r}") from None
    except zipfile.BadZipFile as exc:
        raise UserError(f"{archive}: not a valid zip archive: {exc}") from None
    except (zlib.error, lzma.LZMAError, EOFError, NotImplementedError, OSError) as exc:
        # a damaged compressed member: zlib.error (deflate), OSError (bzip2), LZMAError, EOFError
        # (cut short); NotImplementedError: a compression method zipfile cannot read
        why = " ".join(str(getattr(exc, "strerror", None) or exc).split()) or type(exc).__name__
        raise UserError(f"{archive}: cannot extract {member.path!r} ({type(exc).__name__}: {why}); the archive "
                        "is damaged or unsupported: delete it and download it again") from None
    with atomic_path(target, suffix=".part") as tmp:
        tmp.write_bytes(data)
    m_actual = digests(target)
    out: dict[str, Any] = {"member": member.path, "member_actual": m_actual, "path": str(target)}
    if member.sha256 and member.sha256 != m_actual["sha256"]:
        # The archive's own checksum already vouches for the member; a differing pinned member
        # checksum means our pin (taken from a copy) is off, which is worth recording, not fatal.
        out["member_note"] = f"member sha256 differs from the pinned copy's {member.sha256}"
    return out


def fetch_dataset(ds: Dataset, raw_dir: str | os.PathLike, opts: FetchOptions) -> list[dict[str, Any]]:
    """Fetch/verify every file of ``ds`` into ``raw_dir/<name>``; one provenance record per input."""
    folder = Path(raw_dir) / safe_name(ds.name, "dataset name")  # one folder under raw_dir, never outside it
    return [{"role": inp.role, "format": inp.format, **fetch_file(inp.file, folder, opts)} for inp in ds.inputs]
