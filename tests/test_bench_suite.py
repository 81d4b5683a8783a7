"""`onebp bench-suite`: interleaved order and the summary over repeats (the end-to-end run is in the
smoke workflow test, rule bench)."""

from __future__ import annotations

import pytest

from onebp.bench_suite import order, summarize


def test_order_alternates_every_repeat() -> None:
    assert [order(["a", "b", "c"], r) for r in range(3)] == [["a", "b", "c"], ["c", "b", "a"], ["a", "b", "c"]]


def test_summary_medians_and_spread() -> None:
    recs = [{"method": "a", "epoch_seconds_median": t, "peak_rss_train_mb": 100.0, "peak_gpu_eval_mb": None,
             "phase_seconds_median": {"step": t / 2}} for t in (1.0, 3.0, 2.0, 10.0)]
    recs.append({"method": "b", "epoch_seconds_median": 5.0})
    rows = {(r["method"], r["quantity"]): r for r in summarize(recs)}
    e = rows[("a", "epoch_seconds_median")]
    assert (e["median"], e["min"], e["max"], e["n"]) == (2.5, 1.0, 10.0, 4)
    assert e["q25"] == pytest.approx(1.75) and e["q75"] == pytest.approx(4.75)
    assert rows[("a", "phase_step_seconds")]["median"] == 1.25
    assert ("a", "peak_gpu_eval_mb") not in rows  # None (no GPU) is not a measurement
    assert rows[("b", "epoch_seconds_median")]["n"] == 1
