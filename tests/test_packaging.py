"""A wheel holds every package and the baselines (a container install has them), and an installed
copy finds its baselines without the checkout."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_ships_the_baselines_and_finds_them_installed(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for folder in ("onebp", "baselines"):
        shutil.copytree(REPO / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("onebp_bench-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {p.parent.relative_to(REPO).as_posix() for p in (REPO / "onebp").rglob("__init__.py")}
    for package in packages:  # every subpackage listed in pyproject's [tool.setuptools] packages
        assert f"{package}/__init__.py" in names, f"{package} missing from the wheel"
    for module in (REPO / "baselines").glob("*.py"):
        assert f"onebp_baselines/{module.name}" in names

    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:  # a wheel is installed by unpacking it
        z.extractall(site)
    probe = ("import onebp.methods.registry as r; r.discover(); print(r.baseline_dirs()); "
             "print(sorted(r.method_names()))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    dirs, methods = out.stdout.splitlines()
    assert str(site / "onebp_baselines") in dirs and str(REPO) not in dirs
    assert {"lightgcn", "simplex", "ease", "twobp"} <= set(eval(methods))
