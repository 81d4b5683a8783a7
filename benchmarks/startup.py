"""How fast `onebp train` starts, against importing torch alone (a benchmark, not a test).

A study is hundreds of short processes, so what a run pays before its first epoch matters. This
writes a synthetic split the size of ML-100K (943 users, 1682 items, about 100,000 interactions) to
a temporary directory, then times, interleaved, ``python -c "import torch"`` and
``python -m onebp train --data <split> --method onebp --set epochs=0 ...`` (build, one evaluation
and the test, no training), and prints the medians of wall and CPU seconds and their ratio.

    python benchmarks/startup.py [--repeats 7] [--method onebp]

CPU seconds (user + system of the child) are the steadier figure on a shared machine; wall seconds
are what a study waits. Other processes on the machine widen both: say so with the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from onebp.data.split_format import save_split
from onebp.data.synthetic import SyntheticConfig, synthetic_split

ML_100K_SIZE = SyntheticConfig(n_users=943, n_items=1682, mean_degree=106, seed=0)


def timed(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of ``cmd``; its output is discarded."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs of each command (after one warm-up)")
    parser.add_argument("--method", default="onebp")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        split_dir = save_split(synthetic_split(ML_100K_SIZE), Path(tmp) / "split")
        meta = json.loads((split_dir / "meta.json").read_text())
        torch_only = [sys.executable, "-c", "import torch"]
        train = [sys.executable, "-m", "onebp", "train", "--data", str(split_dir), "--method", args.method,
                 "--set", "epochs=0", "--set", "threads=1", "--set", "device=cpu",
                 "--out", str(Path(tmp) / "run"), "--fresh"]
        env_note = f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start"
        timed(torch_only), timed(train)  # warm-up: file caches, .pyc files
        runs: dict[str, list[tuple[float, float]]] = {"import torch": [], "onebp train epochs=0": []}
        for _ in range(args.repeats):  # interleaved, so a drift in the machine's speed hits both
            runs["import torch"].append(timed(torch_only))
            runs["onebp train epochs=0"].append(timed(train))
    print(f"split: {meta['n_users']} users, {meta['n_items']} items, {sum(meta['parts'].values())} "
          f"interactions; {args.repeats} runs each after a warm-up; {env_note}")
    medians = {}
    for name, values in runs.items():
        wall = statistics.median(w for w, _ in values)
        cpu = statistics.median(c for _, c in values)
        medians[name] = (wall, cpu)
        print(f"{name:22s} median wall {wall:6.2f} s   median CPU {cpu:6.2f} s   "
              f"(wall {min(w for w, _ in values):.2f}–{max(w for w, _ in values):.2f} s)")
    (tw, tc), (ow, oc) = medians["import torch"], medians["onebp train epochs=0"]
    print(f"ratio onebp train / import torch: wall {ow / tw:.2f}, CPU {oc / tc:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
