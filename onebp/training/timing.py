"""Epoch time without stalling the GPU, the opt-in per-phase profile, and peak memory per stage.

* ``EpochTimer``: wall time of a whole epoch. On CUDA it records two events on the stream and reads
  their elapsed time once, when the epoch's loss is read anyway, so the GPU is never made to wait
  inside the epoch; on the CPU it is ``time.perf_counter``.
* ``PhaseTimer``: seconds per phase (sample, prepare, step, aggregate). Charging GPU work to the
  phase that ran it needs ``torch.cuda.synchronize()`` at every phase boundary — twice per batch —
  which serialises the GPU; so it is a profiling setting (``profile_phases``), off by default, and
  a no-op when off.
* ``GpuPeaks``: peak GPU memory of training apart from evaluation (the counter is reset before
  training and around every evaluation), so the training figure holds neither evaluation chunks nor
  anything else.
"""

from __future__ import annotations

import resource
import time

import torch


class PhaseTimer:
    """Accumulates wall time per phase when ``enabled`` (synchronising CUDA so GPU work is charged
    where it ran); when disabled every call is free and ``totals`` stays empty."""

    def __init__(self, device: torch.device, enabled: bool = True) -> None:
        self.cuda = device.type == "cuda"
        self.enabled = enabled
        self.totals: dict[str, float] = {}

    def now(self) -> float:
        if not self.enabled:
            return 0.0
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def add(self, phase: str, since: float) -> float:
        if not self.enabled:
            return 0.0
        t = self.now()
        self.totals[phase] = self.totals.get(phase, 0.0) + t - since
        return t


class EpochTimer:
    """``start()`` … ``seconds()``: one interval; CUDA events on a GPU (no synchronisation until
    ``seconds()``, which waits only for the end event)."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self._t0 = 0.0
        self._events: tuple[torch.cuda.Event, torch.cuda.Event] | None = None

    def start(self) -> None:
        if self.cuda:
            self._events = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
            self._events[0].record()
        self._t0 = time.perf_counter()

    def stop(self) -> None:
        if self._events is not None:
            self._events[1].record()
        self._t1 = time.perf_counter()

    def seconds(self) -> float:
        if self._events is not None:
            self._events[1].synchronize()
            return self._events[0].elapsed_time(self._events[1]) / 1000.0
        return self._t1 - self._t0


class GpuPeaks:
    """Training and evaluation peaks of GPU memory, in MiB (None on the CPU)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self.train_mb: float | None = 0.0 if self.cuda else None
        self.eval_mb: float | None = 0.0 if self.cuda else None

    def _take(self) -> float:
        peak = torch.cuda.max_memory_allocated(self.device) / 2**20
        torch.cuda.reset_peak_memory_stats(self.device)
        return peak

    def start_training(self) -> None:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)

    def before_eval(self) -> None:
        if self.cuda:
            self.train_mb = max(self.train_mb or 0.0, self._take())

    def after_eval(self) -> None:
        if self.cuda:
            self.eval_mb = max(self.eval_mb or 0.0, self._take())

    def update_training(self) -> None:
        """Fold the training peak since the last reset in (call at the end of an epoch)."""
        if self.cuda:
            self.train_mb = max(self.train_mb or 0.0, torch.cuda.max_memory_allocated(self.device) / 2**20)


def peak_memory_mb(device: torch.device) -> tuple[float, float | None]:
    """(peak RSS of this process, peak GPU memory allocated on ``device`` since its last reset or
    None) in MiB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    gpu = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return rss, gpu
