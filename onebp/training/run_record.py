"""The metrics record of a finished run (``metrics.json``): selection, test, timing, memory."""

from __future__ import annotations

from typing import Any

import numpy as np

from onebp.config import TrainConfig
from onebp.training.selection import TrainState


def run_record(cfg: TrainConfig, state: TrainState, test: dict[str, float] | None, test_seconds: float,
               memory: tuple[float, float | None] | tuple[float, float | None, float | None],
               device: str) -> dict[str, Any]:
    """What ``metrics.json`` holds; ``test`` are the test metrics of the selected model (None for a
    tuning trial, whose record then has no ``test`` key at all). ``memory``: peak RSS, peak GPU
    memory of training and (optionally) of evaluation, MiB."""
    selected = state.selected_epoch
    curve = state.curve
    epoch_seconds = [r["seconds_train"] for r in curve if r.get("epoch", 0) > 0]
    eval_seconds = [r["seconds_eval"] for r in curve if "seconds_eval" in r]
    seconds_to_selected = sum(
        r.get("seconds_train", 0.0) + r.get("seconds_eval", 0.0) for r in curve if r["epoch"] <= selected
    )
    rss, gpu, gpu_eval = (*memory, None)[:3]
    out: dict[str, Any] = {
        "method": cfg.method,
        "dataset": cfg.dataset,
        "seed": cfg.seed,
        "protocol": cfg.protocol,
        "selected_epoch": selected,
        "selection": (f"best validation {cfg.select_metric}" if state.best_model is not None
                      else "last epoch (no validation part)"),
        "epochs_run": state.epoch,
        "stopped_early": state.stopped_early,
        "valid": state.best_valid,
        **({"test": test} if test is not None else {"tuning_trial": True}),
        "timing": {
            "epoch_seconds_median": float(np.median(epoch_seconds)) if epoch_seconds else None,
            "eval_seconds_median": float(np.median(eval_seconds)) if eval_seconds else test_seconds,
            "train_seconds_total": float(sum(epoch_seconds)),
            "seconds_to_selected": seconds_to_selected,
        },
        "memory": {"peak_rss_mb": rss, "peak_gpu_mb": gpu, "peak_gpu_eval_mb": gpu_eval},
        "device": device,
    }
    if cfg.protocol == "paper":
        out["best_on_test"] = dict(state.best_on_test)
        out["best_on_test_epoch"] = dict(state.best_on_test_epoch)
        out["best_on_test_note"] = "best test value over all evaluated epochs, chosen on the test set"
    return out
