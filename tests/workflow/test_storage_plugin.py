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

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("rsync") is None,
                       reason="rsync is not installed: snakemake-storage-plugin-fs copies files with it"),
]


@pytest.fixture(scope="module")
def tiny_url() -> Iterator[str]:
    """config/smoke/ (the tiny ML-100K-format zip) served on a free port of 127.0.0.1."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(REPO / "config" / "smoke"))
    handler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/ml-100k-tiny.zip"
    httpd.shutdown()


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
