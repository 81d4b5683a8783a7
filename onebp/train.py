"""The trainer: one loop, checkpoints, early stopping, timing and memory per phase.

Protocols (labelled in every output):

* ``clean`` (default): validation every ``eval_every`` epochs, early stopping after ``patience``
  evaluations without improvement of ``select_metric``, test evaluated once with the selected
  checkpoint (train and validation items masked).
* ``paper``: the official protocol — train all epochs, evaluate the test set at every evaluation
  and record, per metric, the best test value over all epochs (``best_on_test``: chosen on the
  test set, so optimistic by construction). ``test`` is then the test value at the selected epoch
  (best validation epoch if the split has a validation part, else the last epoch).

A run directory holds a checkpoint written atomically at every evaluation; the same command on the
same directory resumes from it and ends with the same numbers as an uninterrupted run (the RNG
state is part of the checkpoint).
"""

from __future__ import annotations

import copy
import hashlib
import math
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from onebp.atomic import atomic_path
from onebp.config import TrainConfig
from onebp.data.split_format import Split
from onebp.errors import UserError
from onebp.evaluate import RankingMetrics, full_ranking_metrics
from onebp.interactions import UserItems
from onebp.method_spec import Method
from onebp.model import BuildContext


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


def derive_seed(*keys: Any) -> int:
    """A 63-bit seed from keys such as (dataset, method, seed): stable across runs and machines."""
    digest = hashlib.sha256("\x1f".join(map(str, keys)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def select_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"setting device={spec!r} but CUDA is not available here")
    return device


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


@dataclass
class TrainState:
    """Everything that changes during training and must survive a restart."""

    epoch: int = 0  # epochs completed
    curve: list[dict[str, Any]] = field(default_factory=list)
    best_value: float = -math.inf
    best_epoch: int = 0
    best_model: dict[str, Any] | None = None
    best_valid: dict[str, float] = field(default_factory=dict)
    bad_evals: int = 0
    best_on_test: dict[str, float] = field(default_factory=dict)
    best_on_test_epoch: dict[str, int] = field(default_factory=dict)
    stopped_early: bool = False


@dataclass
class Data:
    """A split on the training device."""

    split: Split
    train: UserItems
    valid: UserItems | None
    test: UserItems
    train_users: torch.Tensor
    train_items: torch.Tensor

    @classmethod
    def on(cls, split: Split, device: torch.device) -> Data:
        n_u, n_i = split.n_users, split.n_items

        def part(name: str) -> UserItems:
            return UserItems.from_pairs(split.part(name), n_u, n_i, device)

        train_pairs = torch.tensor(split.part("train"), device=device)  # a copy: parts may be read-only
        return cls(
            split,
            part("train"),
            part("valid") if split.has_valid else None,
            part("test"),
            train_pairs[:, 0].contiguous(),
            train_pairs[:, 1].contiguous(),
        )


#: settings that do not change results, so a resumed run may differ in them
NON_RESULT_KEYS = ("device", "threads", "eval_memory_mb", "checkpoint_every")


class Trainer:
    def __init__(self, method: Method, cfg: TrainConfig, split: Split, run_dir: Path | None = None,
                 log: Callable[[str], None] | None = None, progress: bool | None = None) -> None:
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        self.method, self.cfg, self.run_dir = method, cfg, run_dir
        # A progress bar on a terminal, plain log lines (one per evaluation) otherwise.
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.log = log or (tqdm.write if self.progress else
                           (lambda msg: print(msg, file=sys.stderr, flush=True)))
        self.device = select_device(cfg.device)
        self.data = Data.on(split, self.device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(derive_seed(cfg.dataset, cfg.method, cfg.seed))
        ctx = BuildContext(split.n_users, split.n_items, split.part("train"), self.data.train,
                           self.device, self.generator, cfg)
        self.model = method.build(ctx)
        self.state = TrainState()
        self.timer = PhaseTimer(self.device)

    # -- evaluation ---------------------------------------------------------------------------
    def evaluate(self, part: str) -> RankingMetrics:
        d = self.data
        heldout = d.valid if part == "valid" else d.test
        exclude = [d.train] + ([d.valid] if part == "test" and d.valid is not None else [])
        if hasattr(self.model, "prepare_scoring"):
            self.model.prepare_scoring()
        return full_ranking_metrics(self.model.score_users, heldout, exclude, ks=self.cfg.ks,
                                    memory_budget_mb=self.cfg.eval_memory_mb)

    # -- checkpoints ----------------------------------------------------------------------------
    def checkpoint_path(self) -> Path | None:
        return self.run_dir / "checkpoint.pt" if self.run_dir else None

    def save_checkpoint(self) -> None:
        path = self.checkpoint_path()
        if path is None:
            return
        with atomic_path(path) as tmp:
            torch.save(
                {
                    "config": self.cfg.to_dict(),
                    "model": self.model.state_dict(),
                    "generator": self.generator.get_state(),
                    "state": self.state.__dict__,
                },
                tmp,
            )

    def try_resume(self) -> bool:
        path = self.checkpoint_path()
        if path is None:
            return False
        # A process killed while writing a checkpoint leaves its temporary file (never the
        # checkpoint itself, which is replaced by a rename); sweep those before going on.
        for stale in path.parent.glob(f".{path.name}.*.tmp"):
            stale.unlink(missing_ok=True)
        if not path.exists():
            return False
        # On the host: load_state_dict copies into the live tensors, and generator states are
        # host byte tensors whatever the device.
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        old = {k: v for k, v in ckpt["config"].items() if k not in NON_RESULT_KEYS}
        new = {k: v for k, v in self.cfg.to_dict().items() if k not in NON_RESULT_KEYS}
        if old != new:
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise UserError(
                f"{path}: checkpoint was written with different settings ({', '.join(diff)}); "
                "use a new --out directory or delete the old run"
            )
        self.model.load_state_dict(ckpt["model"])
        self.generator.set_state(ckpt["generator"])
        self.state = TrainState(**ckpt["state"])
        self.log(f"resumed from {path} after epoch {self.state.epoch}")
        return True

    # -- the loop ---------------------------------------------------------------------------------
    def run_epoch(self) -> dict[str, Any]:
        cfg, d, model, timer = self.cfg, self.data, self.model, self.timer
        timer.totals = {}
        n = len(d.train_users)
        n_batches = n // cfg.batch_size if cfg.drop_last else -(-n // cfg.batch_size)
        if n_batches == 0:
            raise UserError(f"{n} train interactions, batch_size={cfg.batch_size} and drop_last: no "
                            "batch to train on; lower batch_size or --set drop_last=false")
        t = timer.now()
        perm = torch.randperm(n, generator=self.generator, device=self.device)
        users, items = d.train_users[perm], d.train_items[perm]
        negatives = model.sampler.sample(users, self.generator) if model.sampler else None
        t = timer.add("sample", t)
        model.begin_epoch(users, items, negatives)  # epoch-level precomputation (aggregation plan)
        t = timer.add("prepare", t)
        loss_sum = torch.zeros((), device=self.device)
        for b in range(n_batches):
            loss_sum += model.step(b)
            t = timer.add("step", t)
            model.after_step(b)
            t = timer.add("aggregate", t)
        model.end_epoch(d.train)
        timer.add("aggregate", t)
        loss = float(loss_sum) / max(n_batches, 1)
        epoch = self.state.epoch + 1
        if not math.isfinite(loss):
            raise TrainingDiverged(
                f"epoch {epoch}: training loss is {loss} (lr={cfg.lr} too high, or a broken loss?)"
            )
        tot = timer.totals
        return {
            "epoch": epoch,
            "loss": loss,
            "seconds_sample": tot.get("sample", 0.0),
            "seconds_prepare": tot.get("prepare", 0.0),
            "seconds_step": tot.get("step", 0.0),
            "seconds_aggregate": tot.get("aggregate", 0.0),
            "seconds_train": sum(tot.values()),
        }

    def evaluate_epoch(self, row: dict[str, Any]) -> bool:
        """Validation (and, under protocol paper, test) at this epoch; returns True to stop."""
        cfg, st = self.cfg, self.state
        t = self.timer.now()
        improved = False
        if self.data.valid is not None:
            valid = self.evaluate("valid").mean
            row.update({f"valid/{k}": v for k, v in valid.items()})
            value = valid[cfg.select_metric]
            if value > st.best_value:
                st.best_value, st.best_epoch, st.best_valid = value, row["epoch"], valid
                st.best_model = copy.deepcopy(self.model.state_dict())
                st.bad_evals, improved = 0, True
            else:
                st.bad_evals += 1
        if cfg.protocol == "paper":
            test = self.evaluate("test").mean
            row.update({f"test/{k}": v for k, v in test.items()})
            for k, v in test.items():
                if v > st.best_on_test.get(k, -math.inf):
                    st.best_on_test[k], st.best_on_test_epoch[k] = v, row["epoch"]
        row["seconds_eval"] = self.timer.now() - t
        self.log(
            f"epoch {row['epoch']} loss {row['loss']:.4f} "
            + (f"valid {cfg.select_metric} {row.get('valid/' + cfg.select_metric, float('nan')):.4f} "
               f"(best {st.best_value:.4f} @ {st.best_epoch}) " if self.data.valid is not None else "")
            + (f"test recall@20 {row.get('test/recall@20', float('nan')):.4f} " if cfg.protocol == "paper"
               and "test/recall@20" in row else "")
            + f"{row['seconds_train']:.3f}s/epoch" + (" *" if improved else "")
        )
        return cfg.protocol == "clean" and st.bad_evals >= cfg.patience

    def fit(self) -> dict[str, Any]:
        cfg, st = self.cfg, self.state
        if cfg.protocol == "clean" and self.data.valid is None:
            raise UserError(
                f"protocol 'clean' needs a validation part, split {self.data.split.name!r} has none: "
                "prepare it with --valid-ratio, or use --set protocol=paper"
            )
        if not getattr(self.model, "iterative", True):
            t = time.perf_counter()
            self.model.fit()
            st.curve.append({"epoch": 0, "loss": float("nan"), "seconds_train": time.perf_counter() - t})
            st.best_model, st.best_epoch = None, 0
            return self.finish()
        self.try_resume()
        st = self.state  # the resumed state, if any
        every = cfg.checkpoint_every or cfg.eval_every
        bar = tqdm(total=cfg.epochs, initial=st.epoch, disable=not self.progress, unit="epoch",
                   desc=f"{cfg.method} {cfg.dataset}", file=sys.stderr)
        while st.epoch < cfg.epochs and not st.stopped_early:
            row = self.run_epoch()
            st.epoch = row["epoch"]
            if st.epoch % cfg.eval_every == 0 or st.epoch == cfg.epochs:
                st.stopped_early = self.evaluate_epoch(row)
            rss, gpu = peak_memory_mb(self.device)
            row.update(peak_rss_mb=rss, peak_gpu_mb=gpu)
            st.curve.append(row)
            if st.epoch % every == 0 or st.stopped_early or st.epoch == cfg.epochs:
                self.save_checkpoint()
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.4f}", best=f"{st.best_value:.4f}@{st.best_epoch}",
                            refresh=False)
        bar.close()
        return self.finish()

    def finish(self) -> dict[str, Any]:
        """Test once with the selected model; return the metrics record."""
        cfg, st = self.cfg, self.state
        if st.best_model is not None:
            self.model.load_state_dict(st.best_model)
            selected = st.best_epoch
        else:
            selected = st.epoch
        t = self.timer.now()
        test = self.evaluate("test")
        test_seconds = self.timer.now() - t
        self.test_metrics = test
        curve = st.curve
        epoch_seconds = [r["seconds_train"] for r in curve if r.get("epoch", 0) > 0]
        eval_seconds = [r["seconds_eval"] for r in curve if "seconds_eval" in r]
        seconds_to_selected = sum(
            r.get("seconds_train", 0.0) + r.get("seconds_eval", 0.0) for r in curve if r["epoch"] <= selected
        )
        rss, gpu = peak_memory_mb(self.device)
        out: dict[str, Any] = {
            "method": cfg.method,
            "dataset": cfg.dataset,
            "seed": cfg.seed,
            "protocol": cfg.protocol,
            "selected_epoch": selected,
            "selection": (f"best validation {cfg.select_metric}" if st.best_model is not None
                          else "last epoch (no validation part)"),
            "epochs_run": st.epoch,
            "stopped_early": st.stopped_early,
            "valid": st.best_valid,
            "test": test.mean,
            "timing": {
                "epoch_seconds_median": float(np.median(epoch_seconds)) if epoch_seconds else None,
                "eval_seconds_median": float(np.median(eval_seconds)) if eval_seconds else test_seconds,
                "train_seconds_total": float(sum(epoch_seconds)),
                "seconds_to_selected": seconds_to_selected,
            },
            "memory": {"peak_rss_mb": rss, "peak_gpu_mb": gpu},
            "device": str(self.device),
        }
        if cfg.protocol == "paper":
            out["best_on_test"] = dict(st.best_on_test)
            out["best_on_test_epoch"] = dict(st.best_on_test_epoch)
            out["best_on_test_note"] = "best test value over all evaluated epochs, chosen on the test set"
        return out
