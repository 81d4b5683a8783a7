"""Resume checkpoints: written atomically, refused when the settings that shape results differ.

A checkpoint holds the model (optimizer state included), the RNG state and the ``TrainState``, so
the same command on the same run directory ends with the same numbers as an uninterrupted run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from onebp.atomic import atomic_path
from onebp.config import TrainConfig
from onebp.errors import UserError
from onebp.selection import TrainState

#: settings that do not change results, so a resumed run may differ in them
NON_RESULT_KEYS = ("device", "threads", "eval_memory_mb", "checkpoint_every")


def result_settings(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in NON_RESULT_KEYS}


class Checkpointer:
    """Saves and restores one run directory's ``checkpoint.pt`` (no run directory: does nothing)."""

    def __init__(self, run_dir: Path | None, cfg: TrainConfig) -> None:
        self.path = run_dir / "checkpoint.pt" if run_dir else None
        self.cfg = cfg

    def save(self, model: Any, generator: torch.Generator, state: TrainState) -> None:
        if self.path is None:
            return
        with atomic_path(self.path) as tmp:
            torch.save({"config": self.cfg.to_dict(), "model": model.state_dict(),
                        "generator": generator.get_state(), "state": state.__dict__}, tmp)

    def resume(self, model: Any, generator: torch.Generator) -> TrainState | None:
        """Load the checkpoint into ``model`` and ``generator``; its state, or None if there is none."""
        path = self.path
        if path is None:
            return None
        # A process killed while writing a checkpoint leaves its temporary file (never the
        # checkpoint itself, which is replaced by a rename); sweep those before going on.
        for stale in path.parent.glob(f".{path.name}.*.tmp"):
            stale.unlink(missing_ok=True)
        if not path.exists():
            return None
        # On the host: load_state_dict copies into the live tensors, and generator states are
        # host byte tensors whatever the device.
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        old, new = result_settings(ckpt["config"]), result_settings(self.cfg.to_dict())
        if old != new:
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise UserError(
                f"{path}: checkpoint was written with different settings ({', '.join(diff)}); "
                "use a new --out directory or delete the old run"
            )
        model.load_state_dict(ckpt["model"])
        generator.set_state(ckpt["generator"])
        return TrainState(**ckpt["state"])
