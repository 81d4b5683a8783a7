"""The trainer: the epoch loop and evaluation, composed from small named pieces.

Protocols (labelled in every output):

* ``clean`` (default): validation every ``eval_every`` epochs, early stopping once
  ``patience_epochs`` epochs have passed without improvement of ``select_metric`` (never before
  ``min_epochs``), test evaluated once with the selected checkpoint (train and validation items
  masked). A tuning trial (``tuning_trial``) is a clean run that never evaluates the test part:
  the test interactions are not even loaded, and asking for them raises ``ForbiddenTestAccess``.
* ``paper``: the official protocol — train all epochs, evaluate the test set at every evaluation
  and record, per metric, the best test value over all epochs (``best_on_test``: chosen on the
  test set, so optimistic by construction). ``test`` is then the test value at the selected epoch
  (best validation epoch if the split has a validation part, else the last epoch).

The pieces: ``onebp.training.selection`` (state that survives a restart, early stopping, best epoch),
``onebp.training.checkpoint`` (resume checkpoints by wall time and the best model's weights, RNG state
included, so a resumed run ends with the same numbers as an uninterrupted one; refused across code
revisions and device types), ``onebp.training.curve_log`` (``curve.csv`` appended at every evaluation),
``onebp.training.run_record`` (``metrics.json``) and ``onebp.training.timing`` (epoch time by CUDA events, the
opt-in phase profile, training and evaluation peak memory apart).

Randomness comes from two generators seeded from (dataset, seed) only — never the method — so twins
such as ``onebp`` and ``twobp`` at the same seed start from identical tables (the *init* stream,
given to the method's ``build``) and draw identical shuffles and negatives (the *sampling* stream)
for as long as their updates do not change what is sampled (always, for uniform negatives).
"""

from __future__ import annotations

import hashlib
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from onebp.config import TrainConfig
from onebp.data.split_format import Split
from onebp.errors import UserError
from onebp.methods.spec import Method
from onebp.model.contracts import BuiltModel, IterativeModel, OneShotModel
from onebp.model.interactions import UserItems
from onebp.model.two_tower import BuildContext
from onebp.training.checkpoint import NON_RESULT_KEYS, Checkpointer, load_model_weights, model_weights
from onebp.training.curve_log import CurveLog, curve_columns
from onebp.training.device import select_device
from onebp.training.evaluate import RankingMetrics, full_ranking_metrics
from onebp.training.run_record import run_record
from onebp.training.selection import TrainState
from onebp.training.timing import EpochTimer, GpuPeaks, PhaseTimer, peak_memory_mb

__all__ = ["NON_RESULT_KEYS", "Data", "ForbiddenTestAccess", "Trainer", "TrainingDiverged", "derive_seed",
           "peak_memory_mb", "run_seeds"]


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


class ForbiddenTestAccess(RuntimeError):
    """A tuning trial asked for the test part (a bug in the caller, not a user mistake)."""


def derive_seed(*keys: Any) -> int:
    """A 63-bit seed from keys such as (dataset, method, seed): stable across runs and machines."""
    digest = hashlib.sha256("\x1f".join(map(str, keys)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def run_seeds(dataset: str, seed: int) -> dict[str, int]:
    """The generator seeds of a run: from (dataset, seed) only, so twins share them."""
    return {stream: derive_seed(dataset, seed, stream) for stream in ("init", "sampling")}


def seeded_generators(cfg: TrainConfig, device: torch.device
                      ) -> tuple[dict[str, int], torch.Generator, torch.Generator]:
    """(seeds, init generator, sampling generator) of a run. Two streams from (dataset, seed), not
    the method (module docstring): initialisation, given to ``build``; and the sampling stream
    (shuffles, negatives), which the checkpoint saves and restores."""
    seeds = run_seeds(cfg.dataset, cfg.seed)
    init = torch.Generator(device=device).manual_seed(seeds["init"])
    return seeds, init, torch.Generator(device=device).manual_seed(seeds["sampling"])


def count_batches(n: int, cfg: TrainConfig) -> int:
    """Batches per epoch; an error when ``drop_last`` would leave none."""
    n_batches = n // cfg.batch_size if cfg.drop_last else -(-n // cfg.batch_size)
    if n_batches == 0:
        raise UserError(f"{n} train interactions, batch_size={cfg.batch_size} and drop_last: no "
                        "batch to train on; lower batch_size or --set drop_last=false")
    return n_batches


def check_protocol(cfg: TrainConfig, split: Split) -> None:
    if not cfg.tuning_trial and len(split.parts.get("test", ())) == 0:  # else NaN metrics, a "finished" run
        raise UserError(f"split {split.name!r} has an empty test part: nothing to evaluate; import or prepare it again")
    if cfg.protocol == "clean" and not split.has_valid:
        raise UserError(
            f"protocol 'clean' needs a validation part, split {split.name!r} has none: "
            "prepare it with --valid-ratio, or use --set protocol=paper"
        )


@dataclass
class Data:
    """A split on the training device."""

    split: Split
    train: UserItems
    valid: UserItems | None
    test: UserItems | None  # None for a tuning trial: the test part is never loaded
    train_users: torch.Tensor
    train_items: torch.Tensor

    @classmethod
    def on(cls, split: Split, device: torch.device, with_test: bool = True) -> Data:
        n_u, n_i = split.n_users, split.n_items

        def part(name: str) -> UserItems:
            return UserItems.from_pairs(split.part(name), n_u, n_i, device)

        train_pairs = torch.tensor(split.part("train"), device=device)  # a copy: parts may be read-only
        return cls(
            split,
            part("train"),
            part("valid") if split.has_valid else None,
            part("test") if with_test else None,
            train_pairs[:, 0].contiguous(),
            train_pairs[:, 1].contiguous(),
        )




class Trainer:
    """Trains one method on one split; ``fit()`` returns the metrics record (``metrics.json``)."""

    def __init__(self, method: Method, cfg: TrainConfig, split: Split, run_dir: Path | None = None,
                 log: Callable[[str], None] | None = None, progress: bool | None = None) -> None:
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        self.method, self.cfg, self.run_dir = method, cfg, run_dir
        self.progress, self.log = _progress_and_log(progress, log)
        self.device = select_device(cfg.device)
        self.data = Data.on(split, self.device, with_test=not cfg.tuning_trial)
        self.seeds, init, self.generator = seeded_generators(cfg, self.device)
        ctx = BuildContext(split.n_users, split.n_items, split.part("train"), self.data.train,
                           self.device, init, cfg)
        self.model: BuiltModel = method.build(ctx)  # onebp.model.contracts: iterative or one-shot
        self.state = TrainState()
        self.timer, self.epoch_timer = PhaseTimer(self.device, cfg.profile_phases), EpochTimer(self.device)
        self.gpu_peaks, self.checkpoints = GpuPeaks(self.device), Checkpointer(run_dir, cfg, self.device)
        self.curve_log = CurveLog(run_dir / "curve.csv" if run_dir else None, curve_columns(cfg, split.has_valid))

    def evaluate(self, part: str) -> RankingMetrics:
        """Full-ranking metrics on ``valid`` or ``test`` (train, and for test valid, items masked)."""
        d = self.data
        if part == "test" and (self.cfg.tuning_trial or d.test is None):
            raise ForbiddenTestAccess("a tuning trial must never evaluate the test part")
        heldout = d.valid if part == "valid" else d.test
        exclude = [d.train] + ([d.valid] if part == "test" and d.valid is not None else [])
        self.model.prepare_scoring()
        return full_ranking_metrics(self.model.score_users, heldout, exclude, ks=self.cfg.ks,
                                    memory_budget_mb=self.cfg.eval_memory_mb)

    def run_epoch(self) -> dict[str, Any]:
        """One shuffled pass over train: sample negatives, then step (and aggregate) per batch."""
        cfg, d, model, timer = self.cfg, self.data, _iterative(self.model), self.timer
        timer.totals = {}
        n = len(d.train_users)
        n_batches = count_batches(n, cfg)
        self.epoch_timer.start()
        t = timer.now()
        perm = torch.randperm(n, generator=self.generator, device=self.device)
        users, items = d.train_users[perm], d.train_items[perm]
        negatives = model.sampler.sample(users, self.generator)
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
        self.epoch_timer.stop()
        loss, epoch = float(loss_sum) / max(n_batches, 1), self.state.epoch + 1  # the epoch's one sync
        if not math.isfinite(loss):
            raise TrainingDiverged(f"epoch {epoch}: training loss is {loss} (lr={cfg.lr} too high, or a broken loss?)")
        row = {"epoch": epoch, "loss": loss, "seconds_train": self.epoch_timer.seconds()}
        if timer.enabled:  # profile_phases: seconds per phase (synchronised, so slower on a GPU)
            row.update({f"seconds_{p}": timer.totals.get(p, 0.0) for p in ("sample", "prepare", "step", "aggregate")})
        return row

    def evaluate_epoch(self, row: dict[str, Any]) -> bool:
        """Validation (and, under protocol paper, test) at this epoch; returns True to stop."""
        cfg, st = self.cfg, self.state
        self.gpu_peaks.before_eval()
        t, improved = time.perf_counter(), False
        if self.data.valid is not None:
            valid = self.evaluate("valid").mean
            row.update({f"valid/{k}": v for k, v in valid.items()})
            # encoder weights only, copied to host memory (no optimizer state; out of the GPU's peak)
            improved = st.record_valid(row["epoch"], valid, cfg.select_metric, lambda: model_weights(self.model))
        if cfg.protocol == "paper":
            test = self.evaluate("test").mean
            row.update({f"test/{k}": v for k, v in test.items()})
            st.record_test(row["epoch"], test)
        row["seconds_eval"] = time.perf_counter() - t  # the metrics were read back: the GPU is done
        self.gpu_peaks.after_eval()
        self.log(_progress_line(row, st, cfg, self.data.valid is not None) + (" *" if improved else ""))
        return st.should_stop(cfg.protocol, row["epoch"], cfg.patience_epochs, cfg.min_epochs)

    def fit(self) -> dict[str, Any]:
        cfg = self.cfg
        check_protocol(cfg, self.data.split)
        if not self.model.iterative:
            return _fit_once(self, self.model)
        st = self.state = _resume(self)
        bar = tqdm(total=cfg.epochs, initial=st.epoch, disable=not self.progress, unit="epoch",
                   desc=f"{cfg.method} {cfg.dataset}", file=sys.stderr)
        self.gpu_peaks.start_training()
        while st.epoch < cfg.epochs and not st.stopped_early:
            row = self.run_epoch()
            st.epoch = row["epoch"]
            self.gpu_peaks.update_training()
            evaluated = st.epoch % cfg.eval_every == 0 or st.epoch == cfg.epochs
            if evaluated:
                st.stopped_early = self.evaluate_epoch(row)
            row.update(peak_rss_mb=peak_memory_mb(self.device)[0], peak_gpu_mb=self.gpu_peaks.train_mb,
                       peak_gpu_eval_mb=self.gpu_peaks.eval_mb)
            st.curve.append(row)
            done = st.stopped_early or st.epoch == cfg.epochs
            if evaluated or done:
                self.curve_log.sync(st.curve)  # appended and flushed: progress is visible live
            if done or self.checkpoints.due():
                self.checkpoints.save(self.model, self.generator, st)
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.4f}", best=f"{st.best_value:.4f}@{st.best_epoch}", refresh=False)
        bar.close()
        return self.finish()

    def finish(self) -> dict[str, Any]:
        """Test once with the selected model (a tuning trial: never); return the metrics record."""
        if self.state.best_model is not None:
            load_model_weights(self.model, self.state.best_model)
        t, self.test_metrics = time.perf_counter(), None
        if not self.cfg.tuning_trial:  # a tuning trial is never tested
            self.test_metrics = self.evaluate("test")
        return _record(self, time.perf_counter() - t)


def _progress_and_log(progress: bool | None, log: Callable[[str], None] | None
                      ) -> tuple[bool, Callable[[str], None]]:
    """A progress bar on a terminal; plain log lines (one per evaluation, flushed) otherwise — under
    Snakemake that is the job's log file."""
    progress = sys.stderr.isatty() if progress is None else progress
    return progress, log or (tqdm.write if progress else (lambda msg: print(msg, file=sys.stderr, flush=True)))


def _iterative(model: BuiltModel) -> IterativeModel:
    """The model, if it trains by epochs (a one-shot model is only ever ``fit()``)."""
    if not model.iterative:
        raise TypeError(f"{type(model).__name__} is fitted in one shot: it has no epochs to run")
    return model


def _fit_once(trainer: Trainer, model: OneShotModel) -> dict[str, Any]:
    """A method fitted in one shot (no epochs): one curve row at epoch 0, then the test."""
    t = time.perf_counter()
    model.fit()
    row = {"epoch": 0, "loss": float("nan"), "seconds_train": time.perf_counter() - t}
    if trainer.data.valid is not None:
        # Validated like any method, so tuning (which selects on validation) can compare fits; no
        # copy of the model is kept: there is only one fit to select.
        t = time.perf_counter()
        valid = trainer.evaluate("valid").mean
        row.update({f"valid/{k}": v for k, v in valid.items()}, seconds_eval=time.perf_counter() - t)
        st = trainer.state
        st.best_valid, st.best_value = valid, valid[trainer.cfg.select_metric]
    trainer.state.curve.append(row)
    return trainer.finish()


def _resume(trainer: Trainer) -> TrainState:
    """The checkpoint's state (or a new one); curve.csv is rewritten to the checkpoint's rows (none
    for a new run), so rows a killed run appended after its last checkpoint are trained again, never
    duplicated."""
    resumed = trainer.checkpoints.resume(trainer.model, trainer.generator)
    if resumed is not None:
        trainer.log(f"resumed from {trainer.checkpoints.path} after epoch {resumed.epoch}")
    state = resumed or trainer.state
    trainer.curve_log.start(state.curve)
    return state


def _record(trainer: Trainer, test_seconds: float) -> dict[str, Any]:
    """``metrics.json``: the run record, with training and evaluation GPU peaks and checkpoint I/O."""
    if trainer.device.type == "cuda":
        torch.cuda.synchronize(trainer.device)
    test = trainer.test_metrics.mean if trainer.test_metrics is not None else None
    memory = (peak_memory_mb(trainer.device)[0], trainer.gpu_peaks.train_mb, trainer.gpu_peaks.eval_mb)
    record = run_record(trainer.cfg, trainer.state, test, test_seconds, memory, str(trainer.device))
    record["checkpoint_io"] = {"checkpoints": trainer.checkpoints.saves,
                               "bytes_written": trainer.checkpoints.bytes_written}
    return record


def _progress_line(row: dict[str, Any], st: TrainState, cfg: TrainConfig, has_valid: bool) -> str:
    """One log line per evaluation: loss, validation (best so far), test under protocol paper."""
    line = f"epoch {row['epoch']} loss {row['loss']:.4f} "
    if has_valid:
        line += (f"valid {cfg.select_metric} {row.get('valid/' + cfg.select_metric, float('nan')):.4f} "
                 f"(best {st.best_value:.4f} @ {st.best_epoch}) ")
    if cfg.protocol == "paper" and "test/recall@20" in row:
        line += f"test recall@20 {row['test/recall@20']:.4f} "
    return line + f"{row['seconds_train']:.3f}s/epoch"
