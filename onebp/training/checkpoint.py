"""Resume checkpoints and the best model's weights: bounded I/O, written atomically, refused when
they cannot be resumed faithfully.

Two kinds of file in a run directory:

* ``checkpoint.pt`` — exactly what resume needs: the model's state (weights *and* optimizer state),
  the sampling generator's state and the ``TrainState`` (curve, selection bookkeeping) — not the best
  model. Written by wall time, every ``checkpoint_minutes`` (default 10) and at the end of training,
  so a 1800-epoch run writes a few dozen checkpoints, not one per evaluation.
* ``best_model-epoch<E>.pt`` — the encoder weights of the best validation epoch so far (no optimizer
  state): kept in host memory when validation improves and written with the next checkpoint after an
  improvement. Named by epoch and referenced by the checkpoint, so a kill between the two writes never
  pairs a checkpoint with another epoch's best model; files no checkpoint references are deleted.

A checkpoint records the code revision (a hash of the package's and the baselines' source) and the
device type. Resume refuses a checkpoint of other code (numbers would silently mix two versions), of
another device type (a CPU generator state cannot seed a CUDA generator, and the stream would differ)
or of other result-shaping settings; ``onebp train --fresh`` starts over instead. ``onebp train`` also
records the split's fingerprint (``onebp.training.split_fingerprint``), and resume refuses a
checkpoint trained on other data. A checkpoint or best-model file that cannot be read (truncated,
overwritten) is refused with its name, never a raw unpickling error.
"""

from __future__ import annotations

import hashlib
import pickle
import time
import zipfile
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from onebp.atomic import atomic_path
from onebp.config import TrainConfig
from onebp.errors import UserError
from onebp.model.contracts import TrainableModel
from onebp.training.selection import TrainState
from onebp.training.split_fingerprint import SplitFingerprint

#: settings that do not change results, so a resumed run may differ in them
NON_RESULT_KEYS = ("device", "threads", "eval_memory_mb", "checkpoint_every", "checkpoint_minutes",
                   "profile_phases")
FORMAT = 2  # 1: every evaluation, best model with optimizer state inside the checkpoint
BEST_GLOB = "best_model-epoch*.pt"


def result_settings(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in NON_RESULT_KEYS}


@lru_cache(maxsize=1)
def code_revision() -> str:
    """A short hash of the source files that can shape training: the ``onebp`` package (less its
    report subpackage, which only reads finished runs) and the baselines directories. Works without
    git (a container install), and changes with any fix (or comment) in those files."""
    from onebp.methods.registry import baseline_dirs

    package = Path(__file__).resolve().parent.parent
    files = sorted(p for p in package.rglob("*.py") if "report" not in p.relative_to(package).parts[:-1])
    files += sorted(p for d in baseline_dirs() for p in Path(d).glob("*.py"))
    h = hashlib.sha256()
    for path in files:
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def model_weights(model: TrainableModel) -> dict[str, Any]:
    """What scoring needs (``scoring_weights``: the encoder's tensors for a two-tower model, no
    optimizer state; by default the whole state), copied to host memory, out of the GPU's."""
    return _to_host(model.scoring_weights())


def load_model_weights(model: TrainableModel, weights: dict[str, Any]) -> None:
    model.load_scoring_weights(weights)


def _to_host(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _to_host(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_host(v) for v in obj)
    return obj


class Checkpointer:
    """Saves and restores one run directory's checkpoint and best model (no run directory: nothing)."""

    def __init__(self, run_dir: Path | None, cfg: TrainConfig, device: torch.device | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.dir = Path(run_dir) if run_dir else None
        self.path = self.dir / "checkpoint.pt" if self.dir else None
        self.cfg = cfg
        self.device_type = (device or torch.device("cpu")).type
        self.clock = clock
        self.interval = cfg.checkpoint_minutes * 60.0
        self.last_save = clock()
        self.best_on_disk: int | None = None  # epoch of the best-model file written last
        self.bytes_written = 0
        self.saves = 0
        #: the data this run trains on; set by `onebp train` (which knows the split's directory).
        #: None (the library used directly): nothing recorded, nothing checked.
        self.split: SplitFingerprint | None = None

    def due(self) -> bool:
        """True when ``checkpoint_minutes`` of wall time have passed since the last save."""
        return self.path is not None and self.clock() - self.last_save >= self.interval

    def save(self, model: Any, generator: torch.Generator, state: TrainState) -> None:
        if self.path is None or self.dir is None:
            return
        best_file = None
        if state.best_model is not None:
            best_file = f"best_model-epoch{state.best_epoch}.pt"
            if self.best_on_disk != state.best_epoch or not (self.dir / best_file).exists():
                self._write(self.dir / best_file, {"epoch": state.best_epoch, "weights": state.best_model,
                                                   "code_revision": code_revision()})
                self.best_on_disk = state.best_epoch
        self._write(self.path, {
            "format": FORMAT, "code_revision": code_revision(), "device_type": self.device_type,
            "torch": torch.__version__, "config": self.cfg.to_dict(), "model": model.state_dict(),
            "generator": generator.get_state(), "state": state.resume_dict(), "best_model_file": best_file,
            "split_fingerprint": self.split.digest if self.split else None,
            "data": self.split.source if self.split else None,
        })
        for old in self.dir.glob(BEST_GLOB):  # best models no checkpoint refers to any more
            if old.name != best_file:
                old.unlink(missing_ok=True)
        self.saves += 1
        self.last_save = self.clock()

    def _write(self, path: Path, obj: dict[str, Any]) -> None:
        with atomic_path(path) as tmp:
            torch.save(obj, tmp)
            self.bytes_written += tmp.stat().st_size

    def discard(self) -> None:
        """Delete the checkpoint, best models and any half-written temporary file (``--fresh``)."""
        if self.dir is None or not self.dir.exists():
            return
        for pattern in ("checkpoint.pt", BEST_GLOB, ".checkpoint.pt.*.tmp", ".best_model-epoch*.tmp"):
            for p in self.dir.glob(pattern):
                p.unlink(missing_ok=True)

    def resume(self, model: Any, generator: torch.Generator) -> TrainState | None:
        """Load the checkpoint into ``model`` and ``generator``; its state, or None if there is none."""
        path = self.path
        if path is None or self.dir is None:
            return None
        # A process killed while writing leaves its temporary file (never the checkpoint itself,
        # which is replaced by a rename); sweep those before going on.
        for stale in [*path.parent.glob(f".{path.name}.*.tmp"), *path.parent.glob(".best_model-epoch*.tmp")]:
            stale.unlink(missing_ok=True)
        if not path.exists():
            return None
        # On the host: load_state_dict copies into the live tensors, and generator states are
        # host byte tensors whatever the device.
        fresh = "rerun with `onebp train --fresh` to start over (or use a new --out directory)"
        ckpt = _load(path, "checkpoint", fresh)
        if ckpt.get("format") != FORMAT or ckpt.get("code_revision") != code_revision():
            raise UserError(
                f"{path}: checkpoint was written by other code (revision {ckpt.get('code_revision', 'unknown')}, "
                f"this code is {code_revision()}); resuming would mix two versions' numbers — {fresh}"
            )
        if ckpt.get("device_type") != self.device_type:
            raise UserError(
                f"{path}: checkpoint was written on {ckpt.get('device_type')!r}, this run is on "
                f"{self.device_type!r}; its random stream cannot continue on another device type — "
                f"run it on {ckpt.get('device_type')!r} (--set device=...), or {fresh}"
            )
        old, new = result_settings(ckpt["config"]), result_settings(self.cfg.to_dict())
        if old != new:
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise UserError(
                f"{path}: checkpoint was written with different settings ({', '.join(diff)}); "
                "use a new --out directory or delete the old run"
            )
        self._check_split(path, ckpt, fresh)
        model.load_state_dict(ckpt["model"])
        generator.set_state(ckpt["generator"])
        state = TrainState(**ckpt["state"])
        best_file = ckpt.get("best_model_file")
        if best_file is not None:
            best_path = self.dir / best_file
            if not best_path.exists():
                raise UserError(f"{best_path}: missing, but {path} refers to it — {fresh}")
            best = _load(best_path, "best-model file", fresh)
            if not isinstance(best.get("weights"), dict):
                raise UserError(f"{best_path}: damaged best-model file (no weights) — {fresh}")
            state.best_model = best["weights"]
            self.best_on_disk = state.best_epoch
        for other in self.dir.glob(BEST_GLOB):  # written after this checkpoint by the killed run
            if other.name != best_file:
                other.unlink(missing_ok=True)
        return state

    def _check_split(self, path: Path, ckpt: dict[str, Any], fresh: str) -> None:
        """Refuse to resume on other data than the checkpoint was trained on."""
        if self.split is None:  # the library used without a split directory: nothing to compare
            return
        recorded = ckpt.get("split_fingerprint")
        if recorded is None:
            # Only a checkpoint of this same code revision gets here, and this code's `onebp train`
            # always records the fingerprint: this one was written by the library used directly,
            # with no record of its data. Refused rather than trusted, since resuming on the wrong
            # split silently trains on what may be its test part.
            raise UserError(f"{path}: checkpoint records no split fingerprint, so the data it was trained on "
                            f"cannot be checked against --data {self.split.source} — {fresh}")
        if recorded != self.split.digest:
            short = str(recorded).removeprefix("sha256:")[:12]
            raise UserError(
                f"{path}: checkpoint was trained on split {ckpt.get('data') or 'unknown'} (fingerprint {short}), "
                f"but --data {self.split.source} has fingerprint {self.split.short}; resuming would train on "
                f"other data — {fresh}"
            )


def _load(path: Path, what: str, fresh: str) -> dict[str, Any]:
    """``torch.load`` of a run's own file; a file that cannot be read back is named as damaged.
    Truncation or overwriting shows up as any of several errors depending on where the bytes stop
    (zip reader RuntimeError, EOFError, UnpicklingError, ...), so all of them are caught here."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except (PermissionError, FileNotFoundError, IsADirectoryError) as exc:  # the file, not its bytes
        raise UserError(f"{path}: cannot read the {what} ({exc.strerror or exc}) — {fresh}") from None
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError,
            KeyError, TypeError, AttributeError, ImportError, IndexError) as exc:
        # OSError too: torch's zip reader reports a file cut short as EINVAL from a seek
        # its first sentence: torch appends a paragraph of advice to the zip reader's errors
        detail = (str(exc).splitlines() or [type(exc).__name__])[0].split(". ")[0][:160]
        raise UserError(f"{path}: damaged {what}, cannot be read ({detail}) — {fresh}") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path}: damaged {what} (holds a {type(obj).__name__}, not a dict) — {fresh}")
    return obj
