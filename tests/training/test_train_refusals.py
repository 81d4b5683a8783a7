"""`onebp train` refuses bad input before its first write or delete: a refused run leaves its
directory (and the split) byte for byte as they were, with one line naming the file or key."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from onebp.cli import main

FAST = ["--set", "epochs=4", "--set", "eval_every=2", "--set", "dim=8", "--set", "batch_size=128",
        "--set", "threads=1", "--set", "checkpoint_minutes=0"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (names and bytes)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def one_line_error(code: int, err: str) -> None:
    assert code == 2, err
    assert err.startswith("onebp: error: ") and err.count("\n") == 1, err


def unfinished_run(split: Path, out: Path, capsys) -> None:
    """A run killed after its last checkpoint: checkpoint.pt and its record, no metrics.json."""
    code, _, err = run(capsys, "train", "--data", str(split), "--method", "onebp", *FAST, "--out", str(out))
    assert code == 0, err
    (out / "metrics.json").unlink()
    (out / "per_user_test.npz").unlink()
    assert (out / "checkpoint.pt").is_file()


def test_other_settings_on_an_unfinished_run_leave_it_as_it_was(tiny_split_dir, tmp_path, capsys):
    # Before: config.json and env.json were rewritten and run_state.json marked 'failed' before
    # the checkpoint's settings were compared, so the run's record contradicted its checkpoint.
    out = tmp_path / "run"
    unfinished_run(tiny_split_dir, out, capsys)
    before = snapshot(out)
    code, _, err = run(capsys, "train", "--data", str(tiny_split_dir), "--method", "onebp", *FAST,
                       "--set", "dim=16", "--out", str(out))
    one_line_error(code, err)
    assert "different settings (dim)" in err and str(out / "checkpoint.pt") in err
    assert snapshot(out) == before
    # the same settings still resume and finish it
    code, _, err = run(capsys, "train", "--data", str(tiny_split_dir), "--method", "onebp", *FAST,
                       "--out", str(out))
    assert code == 0 and "resumed from" in err, err
    assert (out / "metrics.json").is_file()


def test_a_batch_larger_than_train_is_refused_before_any_write(tiny_split_dir, tmp_path, capsys):
    # Before: refused at the first epoch, inside fit(), after config.json, env.json, curve.csv and a
    # 'failed' run_state.json were written (and, with --fresh, after the old run was deleted).
    huge = ["--set", "batch_size=100000"]
    new = tmp_path / "new"
    code, _, err = run(capsys, "train", "--data", str(tiny_split_dir), "--method", "onebp", *FAST, *huge,
                       "--out", str(new))
    one_line_error(code, err)
    assert "batch_size=100000" in err and "no batch to train on" in err
    assert not new.exists()
    finished = tmp_path / "finished"
    code, _, err = run(capsys, "train", "--data", str(tiny_split_dir), "--method", "onebp", *FAST,
                       "--out", str(finished))
    assert code == 0, err
    before = snapshot(finished)
    code, _, err = run(capsys, "train", "--data", str(tiny_split_dir), "--method", "onebp", *FAST, *huge,
                       "--fresh", "--out", str(finished))
    one_line_error(code, err)
    assert snapshot(finished) == before


def test_out_may_not_be_a_split_directory(tiny_split_dir, tmp_path, capsys):
    split = tmp_path / "split"
    shutil.copytree(tiny_split_dir, split)
    before = snapshot(split)
    code, _, err = run(capsys, "train", "--data", str(split), "--method", "onebp", *FAST, "--out", str(split))
    one_line_error(code, err)
    assert f"--out {split}" in err and "meta.json" in err
    assert snapshot(split) == before


def test_params_file_errors_name_the_file(tiny_split_dir, tmp_path, capsys):
    p = tmp_path / "p.json"
    cases = [({"dim": 4.5}, f"--params-file {p}: dim=4.5: expected an integer"),
             ({"dimm": 8}, f"--params-file {p}: unknown setting 'dimm' for method 'onebp' (did you mean 'dim'?)"),
             ({"method": "twobp", "params": {"dim": 8}},
              f"--params-file {p}: settings tuned for method 'twobp', but --method is 'onebp'")]
    for content, message in cases:
        p.write_text(json.dumps(content))
        code, _, err = run(capsys, "train", "--data", str(tiny_split_dir), "--method", "onebp",
                           "--params-file", str(p), "--out", str(tmp_path / "r"))
        one_line_error(code, err)
        assert message in err, err
        assert not (tmp_path / "r").exists()
    # --set overrides the file, and its own errors say --set
    p.write_text(json.dumps({"dim": 4.5}))
    code, _, err = run(capsys, "train", "--data", str(tiny_split_dir), "--method", "onebp", "--params-file",
                       str(p), "--set", "dim=x", "--out", str(tmp_path / "r"))
    one_line_error(code, err)
    assert "--set dim='x'" in err
    # a best.json of the same method is applied as before
    p.write_text(json.dumps({"method": "onebp", "params": {"dimm": 8}}))
    code, _, err = run(capsys, "train", "--data", str(tiny_split_dir), "--method", "onebp",
                       "--params-file", str(p), "--out", str(tmp_path / "r"))
    one_line_error(code, err)
    assert "unknown setting 'dimm'" in err


def test_malformed_meta_json_counts_name_the_key(tiny_split_dir, tmp_path, capsys):
    # Before: "parts": [...] raised a TypeError traceback; a count "319" (a string) read as
    # "319 interactions, meta.json says 319".
    split = tmp_path / "split"
    shutil.copytree(tiny_split_dir, split)
    meta_path = split / "meta.json"
    meta = json.loads(meta_path.read_text())
    n_train = meta["parts"]["train"]
    for change, message in [({"parts": ["train", "test"]}, "key 'parts' must be an object"),
                            ({"parts": {**meta["parts"], "train": str(n_train)}},
                             f"key 'parts.train' must be a non-negative integer, got '{n_train}'"),
                            ({"n_users": "120"}, "key 'n_users' must be a non-negative integer, got '120'"),
                            ({"n_items": 80.5}, "key 'n_items' must be a non-negative integer, got 80.5")]:
        meta_path.write_text(json.dumps({**meta, **change}))
        code, _, err = run(capsys, "train", "--data", str(split), "--method", "onebp", "--out",
                           str(tmp_path / "r"))
        one_line_error(code, err)
        assert f"{meta_path}: {message}" in err, err
