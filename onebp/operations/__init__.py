"""Running a study on machines.

* ``gpu_slots``: ``onebp gpu-run`` — flock'ed GPU slots, ``gpu_jobs_per_device`` per device;
* ``status``: ``onebp status`` — where every run stands; ``estimate``: ``onebp estimate`` — the
  device-hours of a configured study before it runs;
* ``bench_suite``: ``onebp bench-suite`` — ``onebp bench`` interleaved and repeated;
* ``device_agreement``: the CPU-vs-CUDA agreement check (benchmarks/gpu_check.sh);
* ``study_archive``: ``onebp study save|restore`` — a study's finished run records kept between machines.

May import every package but report. Importing the package loads no module: the names below are
re-exported on first use (gpu-run must start without torch)."""

from __future__ import annotations

import importlib
from typing import Any

#: public name → the module that defines it (re-exported lazily, on first attribute access)
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(["DevicePolicy", "device_policy", "acquire"], "onebp.operations.gpu_slots"),
    **dict.fromkeys(["run_status", "find_run_dirs"], "onebp.operations.status"),
    **dict.fromkeys(["study_costs"], "onebp.operations.estimate"),
    **dict.fromkeys(["compare"], "onebp.operations.device_agreement"),
    **dict.fromkeys(["save", "restore"], "onebp.operations.study_archive"),
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    # lazy re-export: importing the package (or one of its modules) loads nothing else
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
