"""A truncated or overwritten checkpoint or best-model file is named, with `--fresh` to start over:
one line and exit 2, never a raw RuntimeError/EOFError."""

from __future__ import annotations

import shutil

import pytest

from onebp.cli import main

FAST = ["--method", "onebp", "--set", "epochs=4", "--set", "eval_every=2", "--set", "dim=8",
        "--set", "batch_size=128", "--set", "threads=1"]


@pytest.fixture(scope="module")
def unfinished_run(tmp_path_factory, tiny_split_dir):
    """A run directory with a checkpoint and a best model, and no metrics.json: the next
    `onebp train` resumes from it."""
    out = tmp_path_factory.mktemp("runs") / "run"
    assert main(["train", "--data", str(tiny_split_dir), *FAST, "--out", str(out)]) == 0
    (out / "metrics.json").unlink()
    assert len(list(out.glob("best_model-epoch*.pt"))) == 1
    return out


def damage(path, keep):
    data = path.read_bytes()
    path.write_bytes(data[: keep(len(data))])


@pytest.mark.parametrize("which", ["checkpoint.pt", "best_model"])
@pytest.mark.parametrize("keep", [lambda n: 0, lambda n: 7, lambda n: n // 2, lambda n: n - 9],
                         ids=["empty", "7 bytes", "half", "all but 9 bytes"])
def test_a_damaged_file_is_named_and_fresh_starts_over(unfinished_run, tiny_split_dir, tmp_path, capsys,
                                                        which, keep):
    out = tmp_path / "run"
    shutil.copytree(unfinished_run, out)
    target = out / which if which == "checkpoint.pt" else next(out.glob("best_model-epoch*.pt"))
    damage(target, keep)
    args = ["train", "--data", str(tiny_split_dir), *FAST, "--out", str(out)]
    code = main(args)
    err = capsys.readouterr()[1]
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("onebp: error: ")
    assert f"{target}: damaged" in err and "--fresh" in err
    assert not (out / "metrics.json").exists()
    assert main([*args, "--fresh"]) == 0
    assert (out / "metrics.json").exists()


def test_a_file_that_is_not_a_checkpoint_is_named(unfinished_run, tiny_split_dir, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(unfinished_run, out)
    (out / "checkpoint.pt").write_bytes(b"\x80\x04K\x07.")  # a valid pickle of the int 7
    code = main(["train", "--data", str(tiny_split_dir), *FAST, "--out", str(out)])
    err = capsys.readouterr()[1]
    assert code == 2 and f"{out / 'checkpoint.pt'}: damaged checkpoint" in err
