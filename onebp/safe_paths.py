"""Paths built from user input stay where they belong.

Every command that writes under a directory using a name it was given (a dataset name, a file name
from a dataset definition or URL, a run directory listed in a results table) goes through here:

* :func:`safe_name` accepts a single path component only: non-empty, at most 128 characters,
  starting with a letter or digit, then letters, digits and ``. _ - + =``. That rules out
  separators, ``.``/``..``, hidden files, absolute paths, drive letters and control characters
  without having to list them.
* :func:`inside` joins a relative path onto a base directory and refuses the result unless it
  resolves (symbolic links and ``..`` followed) to somewhere under the base.

Both raise :class:`~onebp.errors.UserError` naming what was refused and why, so the command line
prints one line and exits 2 before anything is written.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from onebp.errors import UserError

#: one path component: what dataset names, raw file names and run-directory names look like
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._+=-]{0,127}"
_NAME = re.compile(NAME_PATTERN)


def safe_name(name: object, what: str) -> str:
    """``name`` if it is a safe single path component; UserError naming ``what`` otherwise."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise UserError(
            f"{what} {name!r} is not a plain name: use 1-128 letters, digits and . _ - + = "
            "starting with a letter or digit (no path separators, no '..')"
        )
    return name


def inside(base: str | os.PathLike, relative: str | os.PathLike, what: str) -> Path:
    """``base / relative``, refused unless it resolves to a path under ``base`` (not ``base`` itself).

    The returned path is the plain join (not resolved), so messages and records keep the form the
    user gave; the check itself follows symbolic links that already exist."""
    rel = Path(relative)
    if rel.is_absolute():
        raise UserError(f"{what} {str(relative)!r} is an absolute path; expected one under {base}")
    joined = Path(base) / rel
    root = Path(base).resolve()
    target = joined.resolve()
    if target == root or not target.is_relative_to(root):
        raise UserError(f"{what} {str(relative)!r} leads outside {base} (to {target})")
    return joined
