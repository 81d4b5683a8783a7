"""The training device, and the contract between ``onebp gpu-run`` and the trainer.

``onebp gpu-run`` (``onebp.operations.gpu_slots``) tells the job it starts which device it holds
through ``ONEBP_GPU_SLOT`` (``SLOT_ENV``); the trainer reads it here, so a job that holds a GPU slot
refuses to train on the CPU. This module imports no torch at import time: ``gpu-run`` imports it
and must start fast.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from onebp.errors import UserError

if TYPE_CHECKING:
    import torch

SLOT_ENV = "ONEBP_GPU_SLOT"


def held_gpu_slot(env: Mapping[str, str] | None = None) -> str | None:
    """The device this process was given by ``gpu-run`` (None: none, or told to use the CPU)."""
    value = (os.environ if env is None else env).get(SLOT_ENV)
    return value if value and value != "cpu" else None


def select_device(spec: str) -> torch.device:
    """The training device. ``auto``: CUDA if available, else the CPU — except in a job that holds a
    GPU slot (``onebp gpu-run``), which fails rather than silently training on the CPU. A CUDA
    device always carries its index (``cuda:0``, never bare ``cuda``), so devices compare equal."""
    import torch

    if spec == "auto":
        slot = held_gpu_slot()
        # ONEBP_FAKE_GPUS=1: the slots are fakes (tests of the lock mechanics on a CPU machine)
        if slot is not None and not torch.cuda.is_available() and os.environ.get("ONEBP_FAKE_GPUS") != "1":
            raise UserError(
                f"this job holds GPU slot {slot!r} (onebp gpu-run set CUDA_VISIBLE_DEVICES={slot}) but "
                f"torch {torch.__version__} sees no CUDA device (a CPU-only torch build, or a driver "
                "problem); refusing to run on the CPU instead — fix the installation, or give the job "
                "no GPU (resources gpu: 0, which runs it on the CPU explicitly)"
            )
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"setting device={spec!r} but CUDA is not available here")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device
