"""`--baselines DIR` must name a directory: a missing one, or a file, is refused naming it (exit 2,
one line) before any module is imported; the ONEBP_BASELINES search path still skips missing entries."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from onebp.cli import main
from onebp.errors import UserError
from onebp.methods.registry import discover

#: a drop-in module that registers nothing and leaves a mark when imported
MARKER_MODULE = "from pathlib import Path\nPath({marker!r}).write_text('imported')\n"


def marked_dir(tmp_path: Path) -> tuple[Path, Path]:
    d = tmp_path / "dropins"
    d.mkdir()
    marker = tmp_path / "imported.txt"
    (d / "marker_mod.py").write_text(MARKER_MODULE.format(marker=str(marker)))
    return d, marker


@pytest.mark.parametrize(("what", "expected"), [("missing", "no such directory"), ("file", "not a directory")])
def test_a_baselines_path_that_is_not_a_directory_is_refused(tmp_path, capsys, what, expected):
    path = tmp_path / "baselines-typo"
    if what == "file":
        path.write_text("x = 1\n")
    assert main(["methods", "--baselines", str(path)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "--baselines" in err and str(path) in err and expected in err
    assert captured.out == ""  # no method list printed from an incomplete registry


def test_the_check_comes_before_any_module_is_imported(tmp_path):
    good, marker = marked_dir(tmp_path)
    with pytest.raises(UserError, match="--baselines"):
        discover([good, tmp_path / "missing"])
    assert not marker.exists()
    discover([good])  # a directory that exists is read as before
    assert marker.read_text() == "imported"


def test_a_missing_entry_of_the_environment_search_path_is_skipped(tmp_path, monkeypatch, capsys):
    good, marker = marked_dir(tmp_path)
    monkeypatch.setenv("ONEBP_BASELINES", f"{tmp_path / 'missing'}{os.pathsep}{good}")
    assert main(["methods"]) == 0
    assert "onebp" in capsys.readouterr().out
    assert marker.read_text() == "imported"
