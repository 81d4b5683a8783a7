"""The smoke preset under a storage plugin with no shared file system (what profiles/kubernetes relies
on): every job finds only its declared inputs, under the local storage prefix, and its outputs go to
the remote prefix. Any command given a path that is not one of its {input}/{output} (a directory
named in the rule, an undeclared file) fails here, where it would pass on a shared disk.

`snakemake-storage-plugin-fs` (the `test` extra) plays the remote storage with a plain directory and
needs `rsync` (.ci/run installs it where it is missing)."""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.workflow.test_workflow import REPO, snakemake

RULES = sorted((REPO / "workflow" / "rules").glob("*.smk"))


def shell_commands(text: str) -> list[str]:
    """The shell: strings of a rules file (the concatenated string literals after each `shell:`)."""
    commands = []
    for block in re.split(r"\n\s*shell:\s*\n", text)[1:]:
        lines = []
        for line in block.splitlines():
            if not line.strip().startswith(('"', "'")):
                break
            lines.append(line.strip())
        commands.append("".join(re.findall(r'"((?:[^"\\]|\\.)*)"', " ".join(lines))))
    return commands


def test_no_rule_names_a_path_in_its_command() -> None:
    """A path written into a command (`--out-dir results/tables`, `--raw-dir data/raw`) is not where
    a storage plugin puts the job's files: every path comes from {input}/{output}/{log} or params."""
    commands = [(f.name, c) for f in RULES for c in shell_commands(f.read_text())]
    assert len(commands) >= 10  # the parser found the rules' commands
    for name, cmd in commands:
        for literal in ("results/", "data/"):
            assert literal not in cmd, f"{name}: {cmd}"


def test_download_declares_the_raw_files_prepare_reads(tmp_path, monkeypatch) -> None:
    import sys

    sys.path.insert(0, str(REPO / "workflow"))
    import onebp_plan

    cfg = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    cfg.update(datasets=["tiny", "ml-100k", "gowalla"], sweeps=[], tuning=None, method_params={}, params={})
    cfg["dataset_options"]["gowalla"] = {}
    cfg["dataset_options"]["ml-100k"] = {}
    cfg.setdefault("prepare", {})
    plan = onebp_plan.StudyPlan(cfg)
    monkeypatch.chdir(tmp_path)
    assert plan.raw_files("tiny") == ["data/raw/tiny/ml-100k-tiny.zip"]  # the custom source's archive
    assert plan.raw_files("gowalla") == ["data/raw/gowalla/train.txt", "data/raw/gowalla/test.txt"]
    assert plan.raw_files("ml-100k") == ["data/raw/ml-100k/ml-100k.zip"]
    # u.data placed by hand instead of the archive (its checksum is pinned): that file is declared
    (tmp_path / "data" / "raw" / "ml-100k").mkdir(parents=True)
    (tmp_path / "data" / "raw" / "ml-100k" / "u.data").write_text("1\t1\t5\t0\n")
    assert plan.raw_files("ml-100k") == ["data/raw/ml-100k/u.data"]
    assert onebp_plan.raw_dir_of("/local/prefix/data/raw/ml-100k/u.data") == "/local/prefix/data/raw"
    assert onebp_plan.download_rule_name("ml-100k") == "download_ml_100k"




@pytest.fixture(scope="module")
def tiny_url() -> Iterator[str]:
    """config/smoke/ (the tiny ML-100K-format zip) served on a free port of 127.0.0.1."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(REPO / "config" / "smoke"))
    handler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/ml-100k-tiny.zip"
    httpd.shutdown()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("rsync") is None,
                    reason="rsync is not installed: snakemake-storage-plugin-fs copies files with it")
def test_smoke_preset_under_a_storage_plugin_without_shared_file_system(tiny_url: str, tmp_path: Path) -> None:
    cfg = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    cfg["dataset_options"]["tiny"]["url"] = tiny_url
    configfile = tmp_path / "smoke.yaml"
    configfile.write_text(yaml.safe_dump(cfg))
    work, remote, local = tmp_path / "work", tmp_path / "remote", tmp_path / "local"
    env = {"ONEBP_GPUS": "0,1", "ONEBP_FAKE_GPUS": "1", "ONEBP_GPU_SLOTS_DIR": str(tmp_path / "gpu-slots")}
    r = snakemake(work, "--cores", "2", "--resources", "gpu=2", "--configfile", str(configfile),
                  "--default-storage-provider", "fs", "--default-storage-prefix", str(remote),
                  "--shared-fs-usage", "none", "--local-storage-prefix", str(local), env=env)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-5000:]
    done = re.findall(r"(\d+) of (\d+) steps \(100%\) done", out)
    assert done and done[-1][0] == done[-1][1], out[-3000:]

    # The final report files are in the remote prefix, where the jobs uploaded them ...
    res = remote / "results"
    for f in ("report.md", "REPORT.md", "results.csv", "runs.csv", "tables/main.md", "tables/tuning.md",
              "tables/claims.csv", "figures/curves.png", "figures/sweep_beta.png", "bench/tiny.json",
              "tuning/tiny/onebp/best.json"):
        assert (res / f).stat().st_size > 0, f
    assert "| tiny" in (res / "tables" / "main.md").read_text()
    assert "tiny" in (res / "report.md").read_text()
    # ... with the raw file that download fetched and prepare read (declared, so it was uploaded),
    assert (remote / "data" / "raw" / "tiny" / "ml-100k-tiny.zip").stat().st_size > 0
    assert "verified" in (remote / "data" / "raw" / "tiny.download.txt").read_text()
    # and no job wrote into the working directory instead (a path named in a rule, not {output}).
    assert not (work / "results" / "tables").exists() and not (work / "data").exists()
