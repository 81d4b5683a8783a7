"""Which data a run trained on: a fingerprint of its split directory, recorded in ``config.json`` and
in the resume checkpoint, so that neither "already finished" nor a resume can silently pair a run
with another split of the same dataset name (whose test part may be the first one's training data).

The fingerprint is a sha256 over the split's interaction files (those of ``train.tsv``,
``valid.tsv``, ``test.tsv`` that ``meta.json`` lists: sorted names, each with its content's sha256) and the id ranges from ``meta.json``
(``n_users``, ``n_items``, which set how many items are ranked). The rest of ``meta.json`` is left
out on purpose: its provenance holds the package version and absolute paths, which change when the
same split is prepared again elsewhere, while the interactions do not. Split files are written
sorted and canonical (``onebp.data.split_format``), so the same split always has the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from onebp.data.split_format import PARTS, SplitError

CHUNK = 1 << 20  # bytes read at a time: memory stays flat whatever the split's size


@dataclass(frozen=True)
class SplitFingerprint:
    digest: str  #: ``sha256:<hex>``
    source: str  #: the split directory it was computed from (resolved)

    @property
    def short(self) -> str:
        return self.digest.removeprefix("sha256:")[:12]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def split_fingerprint(split_dir: str | os.PathLike) -> SplitFingerprint:
    """The fingerprint of a prepared split directory (see the module's docstring)."""
    root = Path(split_dir).resolve()
    meta_path = root / "meta.json"
    try:
        meta = json.loads(meta_path.read_text())
        ranges = {"n_users": int(meta["n_users"]), "n_items": int(meta["n_items"])}
        listed = [p for p in PARTS if p in meta["parts"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SplitError(f"{meta_path}: cannot read the split's id ranges and parts ({exc})") from None
    h = hashlib.sha256(json.dumps(ranges, sort_keys=True).encode() + b"\0")
    # The parts meta.json lists, as load_split reads them (a stray file it ignores is ignored here
    # too); a part that is absent (no validation) changes the name list, hence the fingerprint.
    for name in sorted(f"{p}.tsv" for p in listed):
        path = root / name
        try:
            h.update(name.encode() + b"\0" + file_sha256(path).encode() + b"\0")
        except OSError as exc:
            raise SplitError(f"{path}: cannot read ({exc.strerror})") from None
    return SplitFingerprint(digest=f"sha256:{h.hexdigest()}", source=str(root))
