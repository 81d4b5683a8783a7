"""Compare a protocol-paper run on the official ML-100K split with the official OneBP code's curve.

    python benchmarks/compare_official.py RUN_DIR [RUN_DIR ...]

Prints, for each run, test Recall/NDCG at the epochs the official reference lists and the best
over all epochs (chosen on test, as the official code reports), next to the reference figures.
The reference numbers were measured with the official code (github.com/studentcej/OneBP, seed
2022, 1 thread), kept in onebp/report/published.py and listed with their setting in docs/method.md
(tests/test_docs.py keeps the two equal); they are data, not something this script computes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from onebp.report.published import OFFICIAL_BEST, OFFICIAL_CURVE

# The reference figures' one home is onebp/report/published.py (the reproduction report reads them too).
OFFICIAL = OFFICIAL_CURVE  # epoch -> (Recall@10, NDCG@10, Recall@20, NDCG@20)
COLUMNS = ("recall@10", "ndcg@10", "recall@20", "ndcg@20")


def main(run_dirs: list[str]) -> None:
    for run in map(Path, run_dirs):
        curve = pd.read_csv(run / "curve.csv").set_index("epoch")
        metrics = json.loads((run / "metrics.json").read_text())
        cfg = json.loads((run / "config.json").read_text())
        if metrics["protocol"] != "paper":
            raise SystemExit(f"{run}: protocol {metrics['protocol']!r}; this compares protocol paper runs")
        rows = []
        for epoch, ref in OFFICIAL.items():
            if epoch not in curve.index or f"test/{COLUMNS[0]}" not in curve.columns:
                continue
            ours = [curve.loc[epoch, f"test/{c}"] for c in COLUMNS]
            rows.append([epoch, *(f"{o:.4f} ({r:.4f})" for o, r in zip(ours, ref, strict=True))])
        best = metrics["best_on_test"]
        epochs = metrics["best_on_test_epoch"]
        rows.append(["best", "", "",
                     f"{best['recall@20']:.4f} ({OFFICIAL_BEST['recall@20']:.4f}) @{epochs['recall@20']}",
                     f"{best['ndcg@20']:.4f} ({OFFICIAL_BEST['ndcg@20']:.4f}) @{epochs['ndcg@20']}"])
        print(f"\n{run}: method {cfg['method']}, duplicate_users {cfg['duplicate_users']}, seed {cfg['seed']}, "
              f"{metrics['epochs_run']} epochs, median {metrics['timing']['epoch_seconds_median']:.3f} s/epoch, "
              f"{metrics['timing']['eval_seconds_median']:.3f} s/eval — this run (official OneBP code)")
        print(tabulate(rows, headers=["epoch", *COLUMNS], tablefmt="github"))


if __name__ == "__main__":
    main(sys.argv[1:])
