"""The dataset catalog: one frozen entry per public dataset; adding a dataset = adding an entry
(docs/adding-a-dataset.md).

An entry pins where the raw files come from (URL, size, checksum), which archive member holds the
interactions, how to parse them, the default preprocessing (the paper's choices) and the published
statistics that ``onebp data stats`` compares against (docs/data.md lists them with their sources).

Checksums are either sha256 or, for files served from a git repository (raw.githubusercontent.com),
the git blob id ``sha1(b"blob " + str(len(data)).encode() + b"\\0" + data)``, which the repository
itself publishes.

Custom datasets (not in the catalog) are built by :func:`custom_dataset` from a plain dict, which is
what ``--url/--sha256/--format`` on the command line and a ``--dataset-file`` JSON definition produce.
"""

from __future__ import annotations

import difflib
import json
import os
import string
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from onebp.errors import UserError
from onebp.safe_paths import safe_name


@dataclass(frozen=True)
class Member:
    """A file inside an archive; ``sha256`` may be pinned so the extracted file can be placed offline."""

    path: str  # path inside the archive
    filename: str  # local name when extracted (or placed by hand) next to the archive
    size: int | None = None
    sha256: str | None = None
    note: str = ""


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file, stored as ``RAW_DIR/<dataset>/<filename>``."""

    filename: str
    url: str
    size: int | None = None
    sha256: str | None = None
    git_blob: str | None = None
    member: Member | None = None  # set when the file is a zip archive holding the interactions


@dataclass(frozen=True)
class Input:
    """A part of the raw data: ``role`` is ``all`` (to be split) or ``train``/``test`` (published)."""

    role: str
    format: str
    file: RemoteFile


@dataclass(frozen=True)
class Defaults:
    """A dataset's default preprocessing; ``onebp.data.prepare.PrepareParams`` adds the seed."""

    kcore_user: int = 0
    kcore_item: int = 0
    min_rating: float | None = None  # None: every rating is a positive (the paper's choice)
    split: str = "ratio"  # one of onebp.data.splitting.SPLIT_KINDS
    test_ratio: float = 0.2
    valid_ratio: float = 0.0


@dataclass(frozen=True)
class Expected:
    """Published statistics; None where nothing is published."""

    n_users: int | None = None
    n_items: int | None = None
    n_interactions: int | None = None  # all parts together
    n_train: int | None = None
    n_test: int | None = None


@dataclass(frozen=True)
class Dataset:
    name: str
    description: str
    inputs: tuple[Input, ...]
    defaults: Defaults = field(default_factory=Defaults)
    expected: Expected = field(default_factory=Expected)
    citation: str = ""
    licence: str = ""

    @property
    def has_given_split(self) -> bool:
        return {inp.role for inp in self.inputs} >= {"train", "test"}


_GROUPLENS = "https://files.grouplens.org/datasets/movielens"
_LIGHTGCN = "https://raw.githubusercontent.com/gusye1234/LightGCN-PyTorch/master/data"
_ONEBP = "https://raw.githubusercontent.com/studentcej/OneBP/main/data"
_LIGHTGCN_CITE = (
    "He et al., LightGCN, SIGIR 2020 (github.com/gusye1234/LightGCN-PyTorch, MIT licence); "
    "10-core filtered, 80/20 split by the LightGCN authors"
)
_MOVIELENS_LICENCE = "GroupLens research licence: non-commercial use, cite Harper & Konstan, TiiS 2015"


def _lightgcn(name: str, train_blob: str, test_blob: str, test_size: int) -> tuple[Input, ...]:
    return (
        Input("train", "lightgcn", RemoteFile("train.txt", f"{_LIGHTGCN}/{name}/train.txt", git_blob=train_blob)),
        Input(
            "test",
            "lightgcn",
            RemoteFile("test.txt", f"{_LIGHTGCN}/{name}/test.txt", size=test_size, git_blob=test_blob),
        ),
    )


# The paper merges LightGCN's train+test and re-splits 80/20 per user (docs/method.md, "Official
# data"), hence split="ratio" as the default for those; `--split given` keeps LightGCN's own split.
CATALOG: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            name="ml-100k",
            description="MovieLens 100K ratings (u.data)",
            inputs=(
                Input(
                    "all",
                    "u.data",
                    RemoteFile(
                        "ml-100k.zip",
                        f"{_GROUPLENS}/ml-100k.zip",
                        size=4924029,
                        sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
                        member=Member(
                            "ml-100k/u.data",
                            "u.data",
                            size=1979173,
                            # Member checksum: sha256 of a copy of u.data with the canonical size,
                            # not published by GroupLens (docs/data.md, "Checksums").
                            sha256="06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
                            note="member sha256 from a copy with the canonical size (docs/data.md)",
                        ),
                    ),
                ),
            ),
            expected=Expected(943, 1682, 100000),
            citation="Harper & Konstan, The MovieLens Datasets, ACM TiiS 2015",
            licence=_MOVIELENS_LICENCE,
        ),
        Dataset(
            name="ml-1m",
            description="MovieLens 1M ratings (ratings.dat)",
            inputs=(
                Input(
                    "all",
                    "ratings.dat",
                    RemoteFile(
                        "ml-1m.zip",
                        f"{_GROUPLENS}/ml-1m.zip",
                        size=5917549,
                        sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
                        # No pinned member checksum: a hand-placed ratings.dat needs --allow-unverified.
                        member=Member("ml-1m/ratings.dat", "ratings.dat"),
                    ),
                ),
            ),
            expected=Expected(6040, 3706, 1000209),
            citation="Harper & Konstan, The MovieLens Datasets, ACM TiiS 2015",
            licence=_MOVIELENS_LICENCE,
        ),
        Dataset(
            name="gowalla",
            description="Gowalla check-ins, LightGCN 10-core train/test files",
            inputs=_lightgcn(
                "gowalla",
                "a27782bd7a1d4d0744148dc0460ea94da74763f2",
                "9ed5af4b5d21511f33740b4e22e3852f45671800",
                1372559,
            ),
            expected=Expected(29858, 40981, 810128 + 217242, 810128, 217242),
            citation="Cho et al., KDD 2011 (SNAP loc-gowalla); " + _LIGHTGCN_CITE,
            licence="SNAP data: research use; LightGCN repository: MIT",
        ),
        Dataset(
            name="yelp2018",
            description="Yelp 2018 challenge, LightGCN 10-core train/test files",
            inputs=_lightgcn(
                "yelp2018",
                "cda12361055ba448ae4bd1070f6000c16dea8f22",
                "30dfbc3437b27b74cb2970b435a5ec93ad9f2468",
                1986152,
            ),
            expected=Expected(31668, 38048, 1561406),
            citation="Yelp Dataset Challenge 2018; " + _LIGHTGCN_CITE,
            licence="Yelp dataset terms of use (academic, non-commercial); LightGCN repository: MIT",
        ),
        Dataset(
            name="amazon-book",
            description="Amazon Book reviews, LightGCN 10-core train/test files",
            inputs=_lightgcn(
                "amazon-book",
                "6ef55159c5f1fd7f6d86eb9ff290d0cc2854ac99",
                "09e5da4e0bf46c751c4ba0f4375e414fd13512cd",
                3848611,
            ),
            expected=Expected(52643, 91599, 2984108),
            citation="McAuley et al., SIGIR 2015 / He & McAuley, WWW 2016; " + _LIGHTGCN_CITE,
            licence="Amazon review data: research use; LightGCN repository: MIT",
        ),
        Dataset(
            name="ml-100k-onebp",
            description="the 80/20 ML-100K split released with the official OneBP code",
            inputs=(
                # sha256 values measured on a copy of these files (docs/data.md); the OneBP
                # repository publishes no checksums.
                Input(
                    "train",
                    "onebp-csv",
                    RemoteFile(
                        "100k_train.csv",
                        f"{_ONEBP}/100k_train.csv",
                        size=776612,
                        sha256="8a3625f58b6e88fca5e70690f3d89990ff81a46b631705acbbe5c6a2e51822e8",
                    ),
                ),
                Input(
                    "test",
                    "onebp-csv",
                    RemoteFile(
                        "100k_test.csv",
                        f"{_ONEBP}/100k_test.csv",
                        size=194068,
                        sha256="39de7a693911ccae580852feab0631f2919767fdfbd4b2450a2f9352f9c6c174",
                    ),
                ),
            ),
            defaults=Defaults(split="given"),
            expected=Expected(943, 1682, 100000, 80000, 20000),
            citation="Chen & Wang, One Backpropagation in Two Tower Recommendation Models (github.com/studentcej/OneBP)",
            licence=_MOVIELENS_LICENCE,
        ),
        # MovieLens-1M on the official OneBP split. Only the test file is public (data/1m1_test.csv
        # of the OneBP repository); the official train file is in no public snapshot, so it has no
        # URL: `onebp data download` refuses it until it is placed in data/raw/ml-1m-onebp/ by hand.
        # The train file this entry pins was rebuilt as "all 1,000,209 ML-1M ratings minus the test
        # pairs" (ids: user = UserID - 1, item = order of first appearance in ratings.dat); 36 of its
        # 800,193 rows (25 items) carry item ids that are a deterministic guess inside tie groups of
        # first appearance, so it is not byte-identical to the official train file (docs/data.md,
        # "The ML-1M OneBP split"). sha256 measured on the uncompressed files; 24 test items never
        # occur in train.
        Dataset(
            name="ml-1m-onebp",
            description="MovieLens-1M on the official OneBP split (official test file, rebuilt train file)",
            inputs=(
                Input(
                    "train",
                    "onebp-csv",
                    RemoteFile(
                        "1m1_train.csv",
                        "",  # no public download: placed by hand (docs/data.md)
                        size=8856962,
                        sha256="533e735c3364333d4d4f593888212995645dc8828ab3b035968a5aab199d525f",
                    ),
                ),
                Input(
                    "test",
                    "onebp-csv",
                    RemoteFile(
                        "1m1_test.csv",
                        f"{_ONEBP}/1m1_test.csv",
                        size=2213974,
                        sha256="c827b5346d1e4d874da648037799e40dce781951935ccfe8b843acfdb61ba228",
                    ),
                ),
            ),
            defaults=Defaults(split="given"),
            expected=Expected(6040, 3706, 1000209, 800193, 200016),
            citation="Chen & Wang, One Backpropagation in Two Tower Recommendation Models (github.com/studentcej/OneBP)",
            licence=_MOVIELENS_LICENCE,
        ),
    )
}

# Formats a custom dataset may name: the parser, and the zip member when the file is an archive.
CUSTOM_FORMATS: dict[str, tuple[str, str | None]] = {
    "ml-100k-zip": ("u.data", "ml-100k/u.data"),
    "ml-1m-zip": ("ratings.dat", "ml-1m/ratings.dat"),
    "u.data": ("u.data", None),
    "ratings.dat": ("ratings.dat", None),
    "lightgcn": ("lightgcn", None),
    "onebp-csv": ("onebp-csv", None),
}


def get_dataset(name: str) -> Dataset:
    """The catalog entry ``name``; UserError listing the known names otherwise."""
    try:
        return CATALOG[name]
    except KeyError:
        raise UserError(
            f"unknown dataset {name!r}; known datasets: {', '.join(sorted(CATALOG))} "
            "(or define your own with --url/--sha256/--format or --dataset-file)"
        ) from None


def _filename(url: str) -> str:
    name = os.path.basename(urlsplit(url).path)
    if not name:
        raise UserError(f"cannot derive a file name from URL {url!r}")
    return name


#: the keys a dataset definition may use, with the JSON type each takes ("?": may be null). A key
#: not listed is refused: a misspelt "sha265" or "defualts" silently ignored would drop a checksum
#: or the preprocessing it meant to set.
_SPEC_KEYS = {"name": "string", "files": "list", "description": "string", "defaults": "object", "expected": "object"}
_FILE_KEYS = {"role": "string", "format": "string", "url": "string", "sha256": "string?", "git_blob": "string?",
              "size": "integer?", "filename": "string?", "member_sha256": "string?"}
_DEFAULTS_KEYS = {"kcore_user": "integer", "kcore_item": "integer", "min_rating": "number?", "split": "string",
                  "test_ratio": "number", "valid_ratio": "number"}
_EXPECTED_KEYS = {f.name: "integer?" for f in fields(Expected)}
assert set(_DEFAULTS_KEYS) == {f.name for f in fields(Defaults)}


def _is_type(value: Any, kind: str) -> bool:
    if value is None:
        return kind.endswith("?")
    kind = kind.rstrip("?")
    if isinstance(value, bool):  # JSON true/false is a Python int; never a count or a ratio here
        return False
    return isinstance(value, {"string": str, "list": list, "object": dict, "integer": int,
                              "number": (int, float)}[kind])


def _check_keys(where: str, obj: dict[str, Any], known: dict[str, str]) -> None:
    """Refuse an unknown key (with the nearest known one) or a value of the wrong JSON type."""
    for key, value in obj.items():
        if key not in known:
            near = difflib.get_close_matches(str(key), known, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else f"; known: {', '.join(known)}"
            raise UserError(f"{where}: unknown key {key!r}{hint}")
        if not _is_type(value, known[key]):
            kind = known[key].rstrip("?") + (" or null" if known[key].endswith("?") else "")
            raise UserError(f"{where}: {key!r} must be a JSON {kind}, got {json.dumps(value)[:80]}")


def custom_dataset(spec: dict[str, Any]) -> Dataset:
    """A dataset from a plain definition (a ``--dataset-file`` JSON, or built from CLI flags)::

        {"name": "tiny",
         "files": [{"role": "all", "format": "ml-100k-zip", "url": "...", "sha256": "..."}],
         "defaults": {"split": "ratio", "test_ratio": 0.2},       # optional, Defaults fields
         "expected": {"n_users": 943}}                             # optional, Expected fields

    ``format`` is one of :data:`CUSTOM_FORMATS`; ``role`` is ``all`` or ``train``/``test``; each file
    may also give ``size``, ``git_blob``, ``filename`` and (for archives) ``member_sha256``.
    """
    try:
        name = str(spec["name"])
        files = list(spec["files"])
    except (KeyError, TypeError):
        raise UserError("dataset definition needs 'name' and a list 'files'") from None
    safe_name(name, "dataset name")  # it names the raw folder RAW_DIR/<name>
    _check_keys(f"dataset {name!r}", spec, _SPEC_KEYS)
    for key, known in (("defaults", _DEFAULTS_KEYS), ("expected", _EXPECTED_KEYS)):
        _check_keys(f"dataset {name!r}: {key}", spec.get(key, {}), known)
    inputs = []
    for i, f in enumerate(files):
        if not isinstance(f, dict):
            raise UserError(f"dataset {name!r}: every entry of 'files' must be an object, got {f!r}")
        _check_keys(f"dataset {name!r}: files[{i}]", f, _FILE_KEYS)
        for key, digits in (("sha256", 64), ("member_sha256", 64), ("git_blob", 40)):
            # checked before any fetch: a mistyped checksum would cost the whole download, then fail
            value = f.get(key)
            if value and not (len(value) == digits and all(c in string.hexdigits for c in value)):
                raise UserError(f"dataset {name!r}: files[{i}]: {key!r} must be {digits} hexadecimal digits, "
                                f"got {value[:80]!r} ({len(value)} characters)")
        if f.get("size") is not None and f["size"] < 0:
            raise UserError(f"dataset {name!r}: files[{i}]: 'size' must be >= 0, got {f['size']}")
        fmt = f.get("format")
        if fmt not in CUSTOM_FORMATS:
            raise UserError(f"dataset {name!r}: unknown format {fmt!r}; known: {', '.join(CUSTOM_FORMATS)}")
        parser, member_path = CUSTOM_FORMATS[fmt]
        role = f.get("role", "all")
        if role not in ("all", "train", "test"):
            raise UserError(f"dataset {name!r}: role {role!r} is not one of all, train, test")
        if "url" not in f:
            raise UserError(f"dataset {name!r}: every file needs a 'url'")
        member = None
        if member_path:
            member = Member(member_path, os.path.basename(member_path), sha256=f.get("member_sha256"))
        inputs.append(
            Input(
                role,
                parser,
                RemoteFile(
                    # the file is written as RAW_DIR/<name>/<filename>: one plain name, never a path
                    filename=safe_name(f.get("filename") or _filename(f["url"]), f"dataset {name!r}: file name"),
                    url=f["url"],
                    size=f.get("size"),
                    sha256=(f.get("sha256") or "").lower() or None,
                    git_blob=(f.get("git_blob") or "").lower() or None,
                    member=member,
                ),
            )
        )
    roles = sorted(inp.role for inp in inputs)
    if roles not in (["all"], ["test", "train"]):
        raise UserError(f"dataset {name!r}: needs one 'all' file or one 'train' and one 'test' file, got {roles}")
    try:
        defaults = Defaults(**spec.get("defaults", {}))
        expected = Expected(**spec.get("expected", {}))
    except TypeError as exc:
        raise UserError(f"dataset {name!r}: {exc}") from None
    if "defaults" not in spec and roles == ["test", "train"]:
        defaults = replace(defaults, split="given")
    return Dataset(name, spec.get("description", "custom dataset"), tuple(inputs), defaults, expected)


def load_dataset_file(path: str | os.PathLike) -> Dataset:
    try:
        spec = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"{path}: cannot read dataset definition: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text (a dataset definition is a JSON object)") from None
    if not isinstance(spec, dict):
        raise UserError(f"{path}: a dataset definition is a JSON object, got a JSON {type(spec).__name__}")
    try:
        return custom_dataset(spec)
    except UserError as exc:
        # custom_dataset's messages name the dataset or the key; the file is what the user must edit.
        raise UserError(f"{path}: {exc}") from None


def with_base_url(ds: Dataset, base_url: str) -> Dataset:
    """The same entry with every URL replaced by ``base_url/<filename>`` (mirrors, tests)."""
    base = base_url.rstrip("/")
    inputs = tuple(replace(i, file=replace(i.file, url=f"{base}/{i.file.filename}")) for i in ds.inputs)
    return replace(ds, inputs=inputs)
