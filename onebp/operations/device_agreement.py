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

``python -m onebp.operations.device_agreement --data SPLIT [--method onebp] [--epochs 5]`` prints one JSON line
and exits 1 when they disagree (2 when there is no CUDA device).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import torch

LOSS_RTOL = 1e-3
METRIC_ATOL = 5e-3


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


def compare(split: Any, method: str = "onebp", epochs: int = 5, **settings: Any) -> dict[str, Any]:
    """Train ``method`` on CPU and CUDA from the same tables and draws; the differences."""
    from onebp.config import resolve_config
    from onebp.methods.registry import get_method
    from onebp.training.trainer import Trainer

    m = get_method(method)
    trainers = {}
    for device in ("cpu", "cuda"):
        cfg = resolve_config(m.name, m.params, m.defaults, split.name, {**settings, "device": device})
        trainers[device] = Trainer(m, cfg, split, log=lambda msg: None, progress=False)
    cpu, gpu = trainers["cpu"], trainers["cuda"]
    gpu.model.load_state_dict(cpu.model.state_dict())  # same starting tables (and optimizer state)
    gen = cpu.generator
    losses = []
    for _ in range(epochs):
        n = len(cpu.data.train_users)
        perm = torch.randperm(n, generator=gen)
        users, items = cpu.data.train_users[perm], cpu.data.train_items[perm]
        negatives = cpu.model.sampler.sample(users, gen) if cpu.model.sampler else None
        losses.append((_epoch(cpu, users, items, negatives), _epoch(gpu, users, items, negatives)))
    part = "valid" if split.has_valid else "test"
    metrics = {d: t.evaluate(part).mean for d, t in trainers.items()}
    keys = [k for k in metrics["cpu"] if k.endswith("@20")]
    loss_rdiff = max(abs(a - b) / max(abs(a), 1e-12) for a, b in losses)
    metric_diff = {k: abs(metrics["cpu"][k] - metrics["cuda"][k]) for k in keys}
    return {
        "method": method, "data": split.name, "epochs": epochs, "device": torch.cuda.get_device_name(0),
        "loss_cpu": [a for a, _ in losses], "loss_cuda": [b for _, b in losses],
        "loss_max_rel_diff": loss_rdiff, "metric_abs_diff": metric_diff,
        "loss_rtol": LOSS_RTOL, "metric_atol": METRIC_ATOL,
        "agree": loss_rdiff <= LOSS_RTOL and max(metric_diff.values()) <= METRIC_ATOL,
    }


def main(argv: list[str] | None = None) -> int:
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
    from onebp.config import parse_assignments

    out = compare(load_split(args.data), args.method, args.epochs, threads=1, **parse_assignments(args.set))
    print(json.dumps(out))
    return 0 if out["agree"] else 1


if __name__ == "__main__":
    sys.exit(main())
