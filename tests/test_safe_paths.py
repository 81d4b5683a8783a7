"""``onebp.safe_paths``: names from user input stay one path component; joined paths stay inside."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from onebp.errors import UserError
from onebp.safe_paths import inside, safe_name


@pytest.mark.parametrize("name", ["ml-100k", "ml-1m-onebp", "u.data", "100k_train.csv", "beta=0.9", "a+b", "X" * 128])
def test_plain_names_pass(name: str) -> None:
    assert safe_name(name, "dataset name") == name


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "a\\b", "/abs", ".hidden", "-flag", "a b",
                                  "a\nb", "X" * 129, "é", None, 3])
def test_anything_else_is_refused_naming_what(name: object) -> None:
    with pytest.raises(UserError, match="^dataset name .* is not a plain name"):
        safe_name(name, "dataset name")


def test_inside_accepts_paths_under_the_base(tmp_path: Path) -> None:
    assert inside(tmp_path, "runs/a/config.json", "file") == tmp_path / "runs/a/config.json"
    assert inside(tmp_path, "runs/../b.json", "file") == tmp_path / "runs/../b.json"  # still inside


@pytest.mark.parametrize("rel", ["..", "../x", "a/../../x", "runs/../../../etc/passwd", ".", ""])
def test_inside_refuses_paths_that_leave_the_base(tmp_path: Path, rel: str) -> None:
    with pytest.raises(UserError, match="^reference file .* leads outside"):
        inside(tmp_path / "out", rel, "reference file")


def test_inside_refuses_absolute_paths(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="absolute path"):
        inside(tmp_path, str(tmp_path / "x"), "reference file")


def test_inside_follows_symbolic_links(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "out" / "link")
    with pytest.raises(UserError, match="leads outside"):
        inside(tmp_path / "out", "link/x", "reference file")
