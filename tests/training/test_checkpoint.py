"""Checkpoint policy: by wall time, bounded size (the best model is encoder weights only), refused
across code revisions and device types (``--fresh`` starts over), and curve.csv live and consistent
with resume."""

from __future__ import annotations

import csv

import pytest
import torch

from onebp.cli import main as cli
from onebp.config import resolve_config
from onebp.data.split_format import load_split
from onebp.errors import UserError
from onebp.methods.registry import get_method
from onebp.training import checkpoint as ckpt_module
from onebp.training.checkpoint import Checkpointer
from onebp.training.selection import TrainState
from onebp.training.trainer import Trainer

FAST = {"epochs": 12, "eval_every": 1, "batch_size": 128, "dim": 16, "lr": 0.01, "threads": 1,
        "patience_epochs": 1000}


def trainer(split, run_dir, method="onebp", **overrides):
    m = get_method(method)
    cfg = resolve_config(m.name, m.params, m.defaults, split.name, {**FAST, **overrides})
    return Trainer(m, cfg, split, run_dir=run_dir, log=lambda msg: None)


@pytest.fixture(scope="module")
def split(tiny_split_dir):
    return load_split(tiny_split_dir)


def tensor_bytes(obj) -> int:
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def on_epoch_clock(t: Trainer, minutes_per_epoch: float) -> None:
    """A fake wall clock: ``minutes_per_epoch`` per trained epoch."""
    t.checkpoints.clock = lambda: t.state.epoch * minutes_per_epoch * 60.0
    t.checkpoints.last_save = 0.0


@pytest.mark.parametrize("method", ["onebp", "twobp"])
def test_checkpoints_by_wall_time_and_bounded_size(split, tmp_path, method):
    t = trainer(split, tmp_path, method, checkpoint_minutes=10)
    on_epoch_clock(t, 4.0)  # 4 min per epoch: a checkpoint at epochs 3 (12 min), 6, 9, and the end (12)
    saved = []
    save = t.checkpoints.save
    t.checkpoints.save = lambda *a: (saved.append(t.state.epoch), save(*a))
    record = t.fit()
    assert saved == [3, 6, 9, 12]
    assert record["checkpoint_io"]["checkpoints"] == 4

    ck = torch.load(tmp_path / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert "best_model" not in ck["state"]  # the best model has its own file
    best_files = sorted(p.name for p in tmp_path.glob("best_model-epoch*.pt"))
    assert best_files == [ck["best_model_file"]] == [f"best_model-epoch{t.state.best_epoch}.pt"]
    best = torch.load(tmp_path / best_files[0], map_location="cpu", weights_only=False)
    encoder = t.model.encoder.state_dict()
    assert set(best["weights"]) == set(encoder)  # encoder weights only: no optimizer state
    # Sizes: the best file is the encoder's tensors (plus pickling overhead); the checkpoint is the
    # model's state (weights + optimizer) once — no second copy of anything.
    assert (tmp_path / best_files[0]).stat().st_size < tensor_bytes(encoder) * 1.05 + 8192
    assert (tmp_path / "checkpoint.pt").stat().st_size < tensor_bytes(t.model.state_dict()) * 1.05 + 65536
    total = sum((tmp_path / n).stat().st_size for n in ("checkpoint.pt", best_files[0]))
    assert record["checkpoint_io"]["bytes_written"] >= total


def test_resume_refuses_other_code_or_device_and_fresh_starts_over(split, tiny_split_dir, tmp_path, monkeypatch):
    t = trainer(split, tmp_path, checkpoint_minutes=0)
    for _ in range(2):
        t.state.epoch = t.run_epoch()["epoch"]
    t.checkpoints.save(t.model, t.generator, t.state)
    fresh = trainer(split, tmp_path, checkpoint_minutes=0)
    assert fresh.checkpoints.resume(fresh.model, fresh.generator).epoch == 2

    other_device = Checkpointer(tmp_path, fresh.cfg, torch.device("cuda:0"))
    with pytest.raises(UserError, match=r"written on 'cpu', this run is on 'cuda'.*--fresh"):
        other_device.resume(fresh.model, fresh.generator)

    monkeypatch.setattr(ckpt_module, "code_revision", lambda: "0123456789abcdef")
    with pytest.raises(UserError, match=r"written by other code \(revision .*this code is 0123456789abcdef\).*--fresh"):
        Checkpointer(tmp_path, fresh.cfg).resume(fresh.model, fresh.generator)
    args = ["train", "--data", str(tiny_split_dir), "--method", "onebp", "--out", str(tmp_path),
            *[a for k, v in {**FAST, "epochs": 3}.items() for a in ("--set", f"{k}={v}")]]
    assert cli(args) == 2  # the CLI refuses too
    assert cli([*args, "--fresh"]) == 0
    assert (tmp_path / "metrics.json").exists()


def test_code_revision_tracks_the_source(tmp_path, monkeypatch):
    """Any edit to a source file that can shape training gives another revision (and undoing it the
    same one again): here a baselines directory of one file, edited, restored and joined by another."""
    import onebp.methods.registry as registry

    rev = ckpt_module.code_revision()
    assert len(rev) == 16 and int(rev, 16) >= 0
    assert ckpt_module.code_revision() == rev  # stable within a process
    monkeypatch.setattr(registry, "baseline_dirs", lambda: [tmp_path])
    source = tmp_path / "my_method.py"

    def revision_of(text: str) -> str:
        source.write_text(text)
        ckpt_module.code_revision.cache_clear()
        return ckpt_module.code_revision()

    try:
        first = revision_of("LR = 1e-3\n")
        assert first != rev  # the shipped baselines are no longer part of it
        assert revision_of("LR = 2e-3\n") != first  # one character
        assert revision_of("LR = 1e-3\n") == first
        (tmp_path / "another.py").write_text("")
        ckpt_module.code_revision.cache_clear()
        assert ckpt_module.code_revision() != first  # a new file
    finally:
        monkeypatch.undo()
        ckpt_module.code_revision.cache_clear()
    assert ckpt_module.code_revision() == rev


def read_curve(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_curve_is_live_and_consistent_after_resume(split, tmp_path, monkeypatch):
    full = trainer(split, tmp_path / "full")
    full.fit()
    crash_dir = tmp_path / "crash"
    t = trainer(split, crash_dir, checkpoint_minutes=10)
    on_epoch_clock(t, 4.0)  # checkpoint at epoch 3 and 6
    original = Trainer.run_epoch

    def crash_at_8(self):
        if self.state.epoch == 7:
            # curve.csv is written live: every evaluated epoch so far is on disk, beyond the checkpoint
            assert [int(r["epoch"]) for r in read_curve(crash_dir / "curve.csv")] == list(range(1, 8))
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(Trainer, "run_epoch", crash_at_8)
    with pytest.raises(KeyboardInterrupt):
        t.fit()
    monkeypatch.setattr(Trainer, "run_epoch", original)
    resumed = trainer(split, crash_dir, checkpoint_minutes=10)
    resumed.fit()
    rows = read_curve(crash_dir / "curve.csv")
    assert [int(r["epoch"]) for r in rows] == list(range(1, 13))  # no duplicated, no missing row
    want = read_curve(tmp_path / "full" / "curve.csv")
    for key in ("loss", "valid/ndcg@20"):
        assert [r[key] for r in rows] == [r[key] for r in want]

# -- the Checkpointer on its own (no trainer) ------------------------------------------------------

def cfg(**overrides):
    return resolve_config("onebp", None, {}, "tiny", {"dim": 4, **overrides})


class Tiny(torch.nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.full((3,), value))



def test_checkpoint_round_trip_restores_model_rng_and_state(tmp_path):
    c = cfg()
    model, gen = Tiny(3.0), torch.Generator().manual_seed(7)
    st = TrainState(epoch=4, best_value=0.5, best_epoch=2, curve=[{"epoch": 1, "loss": 1.0}])
    Checkpointer(tmp_path, c).save(model, gen, st)
    expected_draw = torch.rand(2, generator=gen)

    model2, gen2 = Tiny(0.0), torch.Generator().manual_seed(99)
    restored = Checkpointer(tmp_path, c).resume(model2, gen2)
    assert restored == st
    assert torch.equal(model2.w, model.w)
    assert torch.equal(torch.rand(2, generator=gen2), expected_draw)


def test_checkpoint_refuses_other_result_settings_but_not_thread_count(tmp_path):
    Checkpointer(tmp_path, cfg()).save(Tiny(1.0), torch.Generator(), TrainState(epoch=1))
    assert Checkpointer(tmp_path, cfg(threads=3)).resume(Tiny(0.0), torch.Generator()).epoch == 1
    with pytest.raises(UserError, match=r"checkpoint.pt: checkpoint was written with different settings \(lr\)"):
        Checkpointer(tmp_path, cfg(lr=0.5)).resume(Tiny(0.0), torch.Generator())


def test_resume_sweeps_a_killed_write_and_no_run_dir_is_a_no_op(tmp_path):
    stale = tmp_path / ".checkpoint.pt.123.tmp"
    stale.write_bytes(b"half a checkpoint")
    assert Checkpointer(tmp_path, cfg()).resume(Tiny(0.0), torch.Generator()) is None
    assert not stale.exists()
    none = Checkpointer(None, cfg())
    none.save(Tiny(0.0), torch.Generator(), TrainState())
    assert none.resume(Tiny(0.0), torch.Generator()) is None
