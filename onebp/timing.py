"""Wall time per training phase and peak memory, charged where the work ran."""

from __future__ import annotations

import resource
import time

import torch


class PhaseTimer:
    """Accumulates wall time per phase; synchronises CUDA so GPU work is charged where it ran."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.totals: dict[str, float] = {}

    def now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def add(self, phase: str, since: float) -> float:
        t = self.now()
        self.totals[phase] = self.totals.get(phase, 0.0) + t - since
        return t


def peak_memory_mb(device: torch.device) -> tuple[float, float | None]:
    """(peak RSS of this process, peak GPU memory allocated on ``device`` or None) in MiB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    gpu = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return rss, gpu
