"""`onebp train`, `onebp bench`, `onebp methods`: outputs on disk and one-line errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from onebp.cli import main

FAST = ["--set", "epochs=6", "--set", "eval_every=2", "--set", "dim=8", "--set", "batch_size=128",
        "--set", "threads=1"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_train_writes_the_run_directory(tiny_split_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, err = run(capsys, "train", "--data", str(tiny_split_dir), "--method", "onebp", *FAST,
                            "--out", str(out))
    assert code == 0, err
    for name in ("config.json", "env.json", "curve.csv", "metrics.json", "per_user_test.npz", "checkpoint.pt"):
        assert (out / name).is_file(), name
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["method"] == "onebp" and cfg["epochs"] == 6 and cfg["protocol"] == "clean"
    env = json.loads((out / "env.json").read_text())
    assert env["device"] == "cpu" and env["packages"]["torch"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["test"]) >= {"recall@20", "ndcg@20", "precision@5", "hit@10", "mrr@20", "f1@20"}
    assert "best_on_test" not in metrics
    curve = pd.read_csv(out / "curve.csv")
    assert list(curve["epoch"]) == [1, 2, 3, 4, 5, 6]
    assert curve["valid/ndcg@20"].notna().sum() == 3
    per_user = np.load(out / "per_user_test.npz")
    assert per_user["user"].dtype == np.int64
    assert per_user["recall@20"].mean() == pytest.approx(metrics["test"]["recall@20"])
    assert json.loads(stdout)["test"]["recall@20"] == pytest.approx(metrics["test"]["recall@20"], abs=1e-4)
    # The same command again: nothing to do, nothing changed.
    before = (out / "metrics.json").read_bytes()
    code, _, err = run(capsys, "train", "--data", str(tiny_split_dir), "--method", "onebp", *FAST,
                       "--out", str(out))
    assert code == 0 and "already finished" in err
    assert (out / "metrics.json").read_bytes() == before


def test_paper_protocol_reports_best_on_test(tiny_split_no_valid_dir, tmp_path, capsys):
    out = tmp_path / "paper"
    code, _, err = run(capsys, "train", "--data", str(tiny_split_no_valid_dir), "--method", "twobp", *FAST,
                       "--set", "protocol=paper", "--out", str(out))
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["protocol"] == "paper"
    assert set(metrics["best_on_test"]) == set(metrics["test"])
    assert "chosen on the test set" in metrics["best_on_test_note"]
    assert "test/recall@20" in pd.read_csv(out / "curve.csv").columns


def test_bench_prints_one_json_line(tiny_split_dir, capsys):
    code, out, err = run(capsys, "bench", "--data", str(tiny_split_dir), "--method", "onebp", "--epochs", "2",
                         "--evals", "2", "--warmup", "1", "--set", "threads=1")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1
    figures = json.loads(lines[0])
    for key in ("epoch_seconds_median", "eval_seconds_median", "peak_rss_mb", "interactions_per_second"):
        assert figures[key] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--method", "nope"], "unknown method 'nope'; known: "),
        (["--method", "onebp", "--set", "lrr=0.1"], "unknown setting 'lrr'"),
        (["--method", "onebp", "--set", "lr=fast"], "--set lr='fast'"),
        (["--method", "onebp", "--set", "protocol=best"], "expected one of clean, paper"),
        (["--method", "onebp", "--set", "select_metric=ndcg@50"], "select_metric"),
        (["--method", "onebp", "--set", "lr"], "expects key=value"),
    ],
)
def test_bad_arguments_are_one_line_errors(tiny_split_dir, tmp_path, capsys, args, message):
    code, _, err = run(capsys, "train", "--data", str(tiny_split_dir), *args, "--out", str(tmp_path / "r"))
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("onebp: error: ")
    assert message in err
    assert not (tmp_path / "r").exists(), "a failed start must not leave a run directory"


def test_malformed_split_names_file_and_line(tiny_split_dir, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_split_dir, bad)
    lines = (bad / "train.tsv").read_text().splitlines()
    lines[3] = "12\tseven"
    (bad / "train.tsv").write_text("\n".join(lines) + "\n")
    code, _, err = run(capsys, "train", "--data", str(bad), "--method", "onebp", "--out", str(tmp_path / "r"))
    assert code == 2
    assert f"{bad / 'train.tsv'}:4:" in err and "'12\\tseven'" in err
    code, _, err = run(capsys, "train", "--data", str(tmp_path), "--method", "onebp", "--out", str(tmp_path / "r"))
    assert code == 2 and "no meta.json" in err


def test_methods_lists_the_registry(capsys):
    code, out, _ = run(capsys, "methods")
    names = [line.split("\t")[0] for line in out.splitlines()]
    assert code == 0 and {"onebp", "twobp"} <= set(names)


@pytest.mark.parametrize("method", ["onebp", "lightgcn", "ease"])
def test_train_imports_only_what_it_uses(tiny_split_dir, tmp_path, method):
    # A study is hundreds of short `onebp train` processes: none may pay for torch._dynamo (which
    # torch.optim's Adam imports on first use), pandas, scipy, plotting, tuning or the workflow.
    heavy = ("torch._dynamo", "pandas", "scipy", "matplotlib", "optuna", "snakemake", "sympy")
    code = ("import sys; from onebp.cli import main; "
            f"main(['train', '--data', {str(tiny_split_dir)!r}, '--method', {method!r}, '--set', 'epochs=1', "
            f"'--set', 'threads=1', '--out', {str(tmp_path / 'run')!r}]); "
            f"print([m for m in {heavy!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_train_refuses_an_empty_test_part_before_writing_anything(tmp_path, capsys) -> None:
    # an imported test file that is all train pairs used to train and write NaN metrics as "finished";
    # it must be refused before the run directory exists
    import numpy as np

    from onebp.cli import main
    from onebp.data.split_format import Split, save_split

    parts = {"train": np.array([[0, 0], [1, 1], [2, 2]]), "test": np.empty((0, 2), dtype=np.int64)}
    save_split(Split(3, 3, parts, name="hollow"), tmp_path / "split")
    out = tmp_path / "runs" / "r"
    rc = main(["train", "--data", str(tmp_path / "split"), "--method", "onebp", "--out", str(out),
               "--set", "protocol=paper", "--set", "epochs=1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "empty test part" in err[0]
    assert not (tmp_path / "runs").exists()
