"""Parsers: the real formats (tiny files written here), and malformed lines named by number."""

from __future__ import annotations

import numpy as np
import pytest

from onebp.data.parsers import parse
from onebp.errors import UserError


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_udata(tmp_path):
    f = write(tmp_path, "u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    frame = parse(f, "u.data")
    assert list(frame.columns) == ["user", "item", "rating", "timestamp"]
    assert frame.dtypes.tolist() == [np.int64] * 4
    assert frame.values.tolist() == [[196, 242, 3, 881250949], [186, 302, 3, 891717742]]


def test_ratings_dat(tmp_path):
    f = write(tmp_path, "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n")
    frame = parse(f, "ratings.dat")
    assert frame[["user", "item", "rating"]].values.tolist() == [[1, 1193, 5], [1, 661, 3]]


def test_lightgcn_with_empty_user_line(tmp_path):
    f = write(tmp_path, "train.txt", "0 0 1 2\n1\n2 5 3 \n3 4\n")
    frame = parse(f, "lightgcn")
    assert frame.values.tolist() == [[0, 0], [0, 1], [0, 2], [2, 5], [2, 3], [3, 4]]
    assert frame.attrs["max_user"] == 3
    assert frame.dtypes.tolist() == [np.int64] * 2


def test_onebp_csv(tmp_path):
    f = write(tmp_path, "100k_train.csv", "user,item,rating\n0,528,4\n0,377,4\n")
    frame = parse(f, "onebp-csv")
    assert frame.values.tolist() == [[0, 528, 4], [0, 377, 4]]


@pytest.mark.parametrize(
    "fmt, name, text, lineno, bad",
    [
        ("u.data", "u.data", "1\t2\t3\t4\n1\t2\t3\n5\t6\t7\t8\n", 2, "1\\t2\\t3"),
        ("u.data", "u.data", "1\t2\t3\t4\n5\t6\t7\t8\t9\n", 2, "5\\t6\\t7\\t8\\t9"),
        ("u.data", "u.data", "1\t2\t3\t4\n1\t2\t3\t4\n1\tx\t3\t4\n", 3, "1\\tx\\t3\\t4"),
        ("u.data", "u.data", "1,2,3,4\n", 1, "1,2,3,4"),
        ("ratings.dat", "ratings.dat", "1::2::3::4\n1::2::3.5::4\n", 2, "1::2::3.5::4"),
        ("ratings.dat", "ratings.dat", "1::2::3::4\n1::2::3\n", 2, "1::2::3"),
        ("lightgcn", "train.txt", "0 1 2\n1 3 four\n", 2, "1 3 four"),
        ("onebp-csv", "100k_test.csv", "user,item,rating\n0,1,5\n0,,5\n", 3, "0,,5"),
    ],
)
def test_malformed_line_is_named(tmp_path, fmt, name, text, lineno, bad):
    f = write(tmp_path, name, text)
    with pytest.raises(UserError) as exc:
        parse(f, fmt)
    msg = str(exc.value)
    assert msg.startswith(f"{name}:{lineno}:"), msg
    assert bad in msg


def test_bad_header_and_unknown_format(tmp_path):
    f = write(tmp_path, "x.csv", "u,i,r\n0,1,5\n")
    with pytest.raises(UserError, match="x.csv:1: expected header"):
        parse(f, "onebp-csv")
    with pytest.raises(UserError, match="unknown format"):
        parse(f, "parquet")


@pytest.mark.parametrize(("name", "fmt", "text", "bad"), [
    ("u.data", "u.data", "1\t2\t3\t4\n99999999999999999999\t2\t3\t4\n", 2),
    ("u.data", "u.data", "1\t2\t3\t4\n1\t\u0663\t3\t4\n", 2),
    ("tr.csv", "onebp-csv", "user,item,rating\n1,2,3\n99999999999999999999,2,3\n", 3),
    ("tr.csv", "onebp-csv", "user,item,rating\n1,\u0663,3\n", 2),
    ("ratings.dat", "ratings.dat", "1::2::3::4\n1::99999999999999999999::3::4\n", 2),
    ("train.txt", "lightgcn", "1 2 3\n2 99999999999999999999\n", 2),
    ("train.txt", "lightgcn", "1 2 3\n2 \u0663\n", 2),
])
def test_an_id_beyond_int64_or_a_non_ascii_digit_names_its_line(tmp_path, name, fmt, text, bad):
    """Before: a 20-digit id was an OverflowError traceback, a non-ASCII digit (str.isdigit accepts it)
    'cannot parse (no single malformed line found)'."""
    f = tmp_path / name
    f.write_text(text, encoding="utf-8")
    with pytest.raises(UserError, match=rf"^{name.replace('.', r'[.]')}:{bad}: expected "):
        parse(f, fmt)
