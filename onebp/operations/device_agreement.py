"""CPU vs CUDA: the same method, the same starting tables and the same draws, trained a few epochs on
each device; the losses and the validation metrics must agree within a stated tolerance.

The two devices' random generators produce different streams, so "the same seed" alone would compare
two different runs. Here both models start from the CPU-built tables (copied to the GPU) and every
epoch's shuffle and negatives are drawn once on the CPU and given to both. What is left to differ is
floating-point order (cuBLAS vs CPU BLAS, atomic ``index_add_`` on the GPU), hence the tolerances:

* per-epoch mean training loss: relative difference ≤ ``LOSS_RTOL`` (1e-3);
* validation metrics at K = 20 after the last epoch: absolute difference ≤ ``METRIC_ATOL`` (5e-3),
  about one user's hit in a thousand users' NDCG — rank ties broken differently by a last-bit
  difference in a score move a metric by that much, a real bug moves it far more.

A non-finite loss (any epoch) or metric on either side, or a metric @20 one side lacks, is a
disagreement whatever the other side says; ``disagreements`` in the result lists every reason.

``python -m onebp.operations.device_agreement --data SPLIT [--method onebp] [--epochs 5] [--set KEY=VALUE]``
prints one JSON line and exits 0 when the devices agree, 1 when they disagree, 2 when there is no CUDA
device or the input is refused (one line on stderr). ``--set threads=N`` replaces the default of 1
thread; ``device`` cannot be set (the check picks both devices).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterable
from typing import Any

import torch

from onebp.errors import UserError

LOSS_RTOL = 1e-3
METRIC_ATOL = 5e-3
METRIC_K = 20


def _epoch(trainer: Any, users: torch.Tensor, items: torch.Tensor, negatives: torch.Tensor | None) -> float:
    from onebp.training.trainer import count_batches

    d = trainer.device
    model = trainer.model
    model.begin_epoch(users.to(d), items.to(d), None if negatives is None else negatives.to(d))
    n_batches = count_batches(len(users), trainer.cfg)
    loss = torch.zeros((), device=d)
    for b in range(n_batches):
        loss += model.step(b)
        model.after_step(b)
    model.end_epoch(trainer.data.train)
    return float(loss) / n_batches


def _worst(values: Iterable[float]) -> float:
    """The largest value, NaN if any is NaN (the built-in ``max`` keeps a NaN only when it comes first,
    so a NaN later in the list would vanish from the reported worst difference)."""
    values = list(values)
    return math.nan if any(math.isnan(v) for v in values) else max(values, default=0.0)


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else str(device)


def compare(split: Any, method: str = "onebp", epochs: int = 5, *,
            devices: tuple[str, str] = ("cpu", "cuda"), **settings: Any) -> dict[str, Any]:
    """Train ``method`` on CPU and CUDA from the same tables and draws; the differences.

    ``devices``: the reference device (it builds the tables and draws the shuffles and negatives)
    and the device checked against it. The default is the check itself; tests pass ``("cpu", "cpu")``
    to run it without a GPU. The result's ``*_cpu``/``*_cuda`` keys name the first and second device.
    Raises ``UserError`` for ``epochs`` < 1, for settings without the metrics at 20, and for a
    ``device`` setting (``devices`` picks them)."""
    from onebp.config import resolve_config
    from onebp.methods.registry import get_method
    from onebp.training.trainer import Trainer

    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise UserError(f"device agreement: epochs={epochs!r}; it needs at least 1 epoch to compare")
    if "device" in settings:
        raise UserError(f"device agreement: device={settings['device']!r} cannot be set; the check "
                        f"trains on {devices[0]} and on {devices[1]}")
    m = get_method(method)
    trainers = []
    for device in devices:
        cfg = resolve_config(m.name, m.params, m.defaults, split.name, {**settings, "device": device})
        if METRIC_K not in cfg.ks:  # refused before minutes of training, not after
            raise UserError(f"device agreement: ks={','.join(map(str, cfg.ks))} has no {METRIC_K}; the "
                            f"check compares the validation metrics @{METRIC_K}")
        trainers.append(Trainer(m, cfg, split, log=lambda msg: None, progress=False))
    cpu, gpu = trainers
    gpu.model.load_state_dict(cpu.model.state_dict())  # same starting tables (and optimizer state)
    gen = cpu.generator
    losses = []
    for _ in range(epochs):
        n = len(cpu.data.train_users)
        perm = torch.randperm(n, generator=gen)
        users, items = cpu.data.train_users[perm], cpu.data.train_items[perm]
        negatives = cpu.model.sampler.sample(users, gen) if cpu.model.sampler else None
        losses.append((_epoch(cpu, users, items, negatives), _epoch(gpu, users, items, negatives)))
    names = [f"{cpu.device} (reference)", str(gpu.device)]  # distinct even when both are the CPU
    problems = []
    for epoch, pair in enumerate(losses, 1):
        for name, loss in zip(names, pair, strict=True):
            if not math.isfinite(loss):
                problems.append(f"epoch {epoch}: training loss on {name} is {loss}")
    loss_rdiff = _worst(abs(a - b) / max(abs(a), 1e-12) for a, b in losses)
    if loss_rdiff > LOSS_RTOL:  # False for NaN: reported above as a non-finite loss
        problems.append(f"training loss relative difference {loss_rdiff:.3g} > {LOSS_RTOL:g}")

    part = "valid" if split.has_valid else "test"
    metrics: list[dict[str, float]] = []
    for name, trainer in zip(names, trainers, strict=True):
        try:
            metrics.append(trainer.evaluate(part).mean)
        except ValueError as exc:  # NaN scores (tables gone NaN): a disagreement to report, not a crash
            problems.append(f"{part} evaluation on {name} failed: {exc}")
    keys = sorted({k for side in metrics for k in side if k.endswith(f"@{METRIC_K}")})
    if metrics and not keys:
        raise UserError(f"device agreement: the {part} evaluation returned no metric @{METRIC_K}")
    metric_diff = {}
    for k in keys if len(metrics) == 2 else ():  # both sides evaluated
        missing = [name for name, side in zip(names, metrics, strict=True) if k not in side]
        if missing:
            problems.append(f"{k}: missing on {', '.join(missing)}")
            continue
        a, b = (side[k] for side in metrics)
        bad = [f"{v} on {name}" for name, v in zip(names, (a, b), strict=True) if not math.isfinite(v)]
        if bad:
            problems.append(f"{k}: {', '.join(bad)}")
        metric_diff[k] = abs(a - b)
        if metric_diff[k] > METRIC_ATOL:
            problems.append(f"{k}: absolute difference {metric_diff[k]:.3g} > {METRIC_ATOL:g}")
    return {
        "method": method, "data": split.name, "epochs": epochs, "device": _device_name(gpu.device),
        "loss_cpu": [a for a, _ in losses], "loss_cuda": [b for _, b in losses],
        "loss_max_rel_diff": loss_rdiff, "metric_abs_diff": metric_diff,
        "metric_max_abs_diff": _worst(metric_diff.values()) if metric_diff else None,
        "loss_rtol": LOSS_RTOL, "metric_atol": METRIC_ATOL,
        "agree": not problems, "disagreements": problems,
    }


def main(argv: list[str] | None = None) -> int:
    from onebp.config import parse_assignments
    from onebp.data.split_format import load_split

    p = argparse.ArgumentParser(prog="python -m onebp.operations.device_agreement", description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--method", default="onebp")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print(json.dumps({"agree": None, "skipped": "no CUDA device"}))
        return 2
    try:
        # one thread by default (the CPU side's reduction order stays fixed); a --set threads wins
        settings = {"threads": 1, **parse_assignments(args.set)}
        out = compare(load_split(args.data), args.method, args.epochs, **settings)
    except UserError as exc:
        print(f"onebp: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(out))
    return 0 if out["agree"] else 1


if __name__ == "__main__":
    sys.exit(main())
