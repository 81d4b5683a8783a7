"""Which data a run used: the split's fingerprint in config.json and the checkpoint; neither
"already finished" nor a resume may pair a run with another split of the same dataset name."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from onebp.cli import main
from onebp.config import resolve_config
from onebp.data.split_format import load_split, save_split
from onebp.data.synthetic import SyntheticConfig, synthetic_split
from onebp.errors import UserError
from onebp.training.checkpoint import Checkpointer
from onebp.training.selection import TrainState
from onebp.training.split_fingerprint import split_fingerprint

FAST = ["--method", "onebp", "--set", "epochs=4", "--set", "eval_every=2", "--set", "dim=8",
        "--set", "batch_size=128", "--set", "threads=1"]


@pytest.fixture(scope="module")
def other_split_dir(tmp_path_factory, tiny_split_dir):
    """Another split with the tiny split's name and sizes (a different seed): the runs' settings,
    dataset name included, cannot tell the two apart."""
    split = synthetic_split(SyntheticConfig(n_users=120, n_items=80, mean_degree=15, seed=1))
    tiny = load_split(tiny_split_dir)
    assert (split.n_users, split.n_items) == (tiny.n_users, tiny.n_items)
    split.name = tiny.name
    out = tmp_path_factory.mktemp("splits") / "tiny-other"
    save_split(split, out)
    return out


def train(capsys, data, out, *extra):
    code = main(["train", "--data", str(data), *FAST, "--out", str(out), *extra])
    return code, capsys.readouterr()[1]


def test_the_fingerprint_follows_the_interactions_not_the_path_or_provenance(tiny_split_dir, tmp_path):
    fp = split_fingerprint(tiny_split_dir)
    assert fp.digest.startswith("sha256:") and fp.source == str(tiny_split_dir.resolve())
    copy = tmp_path / "copy"
    shutil.copytree(tiny_split_dir, copy)
    meta = json.loads((copy / "meta.json").read_text())
    meta["provenance"] = {"onebp_version": "another", "path": "/elsewhere"}
    (copy / "meta.json").write_text(json.dumps(meta))
    assert split_fingerprint(copy).digest == fp.digest  # same data, prepared elsewhere
    assert split_fingerprint(copy).source == str(copy.resolve())

    lines = (copy / "test.tsv").read_text().splitlines()
    (copy / "test.tsv").write_text("\n".join([lines[0], *lines[2:], lines[1]]) + "\n")  # one line moved
    assert split_fingerprint(copy).digest != fp.digest
    shutil.copy(tiny_split_dir / "test.tsv", copy / "test.tsv")
    meta["n_items"] += 1  # one more item ranked at evaluation
    (copy / "meta.json").write_text(json.dumps(meta))
    assert split_fingerprint(copy).digest != fp.digest


def test_a_finished_run_is_not_finished_for_another_split(tiny_split_dir, other_split_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code, err = train(capsys, tiny_split_dir, out)
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())
    assert config["split_fingerprint"] == split_fingerprint(tiny_split_dir).digest
    metrics = (out / "metrics.json").read_bytes()

    code, err = train(capsys, other_split_dir, out)
    assert code == 2 and err.count("\n") == 1
    assert str(tiny_split_dir.resolve()) in err and str(other_split_dir.resolve()) in err
    assert split_fingerprint(tiny_split_dir).short in err and split_fingerprint(other_split_dir).short in err
    assert "--fresh" in err and "already finished" not in err
    assert (out / "metrics.json").read_bytes() == metrics

    code, err = train(capsys, tiny_split_dir, out)  # its own split: still finished
    assert code == 0 and "already finished" in err
    code, err = train(capsys, other_split_dir, out, "--fresh")  # starting over on the other split
    assert code == 0, err
    assert json.loads((out / "config.json").read_text())["split_fingerprint"] == split_fingerprint(other_split_dir).digest


def test_a_killed_run_does_not_resume_on_another_split(tiny_split_dir, other_split_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code, err = train(capsys, tiny_split_dir, out)
    assert code == 0, err
    (out / "metrics.json").unlink()  # as if killed after its last checkpoint
    ckpt = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert ckpt["split_fingerprint"] == split_fingerprint(tiny_split_dir).digest

    code, err = train(capsys, other_split_dir, out)
    assert code == 2 and err.count("\n") == 1
    assert "checkpoint.pt: checkpoint was trained on split" in err
    assert split_fingerprint(tiny_split_dir).short in err and split_fingerprint(other_split_dir).short in err
    assert "--fresh" in err
    assert not (out / "metrics.json").exists()
    code, err = train(capsys, tiny_split_dir, out)  # on its own split it resumes
    assert code == 0 and "resumed from" in err


def test_a_run_finished_before_fingerprints_is_checked_by_its_data_path(tiny_split_dir, other_split_dir,
                                                                           tmp_path, capsys):
    out = tmp_path / "run"
    assert train(capsys, tiny_split_dir, out)[0] == 0
    config = json.loads((out / "config.json").read_text())
    del config["split_fingerprint"]  # what older code wrote
    (out / "config.json").write_text(json.dumps(config))
    code, err = train(capsys, tiny_split_dir, out)
    assert code == 0 and "already finished" in err
    code, err = train(capsys, other_split_dir, out)
    assert code == 2 and "predates split fingerprints" in err and str(other_split_dir.resolve()) in err


def test_a_checkpoint_without_a_fingerprint_is_not_resumed_on_a_known_split(tiny_split_dir, tmp_path):
    cfg = resolve_config("onebp", None, {}, "tiny", {"dim": 4})
    model = torch.nn.Linear(2, 2)
    Checkpointer(tmp_path, cfg).save(model, torch.Generator(), TrainState(epoch=1))  # library use: no split
    # the library without a split resumes it as before
    assert Checkpointer(tmp_path, cfg).resume(model, torch.Generator()).epoch == 1
    known = Checkpointer(tmp_path, cfg)
    known.split = split_fingerprint(tiny_split_dir)
    with pytest.raises(UserError, match=r"records no split fingerprint.*--fresh"):
        known.resume(model, torch.Generator())
