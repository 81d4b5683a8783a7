"""Published reference figures the report compares against (facts, not computed here; their one home).

* ``OFFICIAL_CURVE`` / ``OFFICIAL_BEST``: the official OneBP code (github.com/studentcej/OneBP, seed
  2022, 1 thread) on its own ML-100K split, protocol paper: test metrics at some epochs, and the best
  over 2000 epochs chosen on the test set. docs/method.md lists the same numbers (tests/test_docs.py
  keeps them equal); ``benchmarks/compare_official.py`` and the reproduction report read them here.
* ``GOWALLA_ANCHORS``: published Recall@20 / NDCG@20 of baselines on the LightGCN Gowalla split —
  MF-BPR from Wang et al., NGCF (SIGIR 2019), its overall comparison table (the LightGCN paper does
  not list MF); LightGCN from He et al., LightGCN (SIGIR 2020), Table 3; SimpleX from Mao et al.,
  SimpleX (CIKM 2021). Those papers report the test metric of their final or best epoch, i.e. closest
  to our protocol paper.
"""

from __future__ import annotations

#: the official code's split of ML-100K (``onebp data import --format onebp-csv``), our dataset name
OFFICIAL_DATASET = "ml-100k-onebp"
#: epoch -> (Recall@10, NDCG@10, Recall@20, NDCG@20)
OFFICIAL_CURVE = {
    50: (0.1938, 0.3541, 0.2957, 0.3531),
    200: (0.2128, 0.3914, 0.3227, 0.3902),
    500: (0.2324, 0.4336, 0.3533, 0.4294),
    1000: (0.2392, 0.4444, 0.3629, 0.4407),
    2000: (0.2448, 0.4483, 0.3690, 0.4457),
}
OFFICIAL_BEST = {"recall@20": 0.3743, "ndcg@20": 0.4494}

#: method -> (Recall@20, NDCG@20, source)
GOWALLA_ANCHORS = {
    "bpr-mf": (0.1291, 0.1109, "Wang et al., NGCF, SIGIR 2019 (MF)"),
    "lightgcn": (0.1830, 0.1554, "He et al., LightGCN, SIGIR 2020, Table 3"),
    "simplex": (0.1872, 0.1557, "Mao et al., SimpleX, CIKM 2021"),
}
