"""Report: results table, tables (mean ± std, bold best, significance markers) and figures from
run directories fabricated in the trainer's on-disk format."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from onebp.errors import UserError
from onebp.report.collect import collect, load_results
from onebp.report.layout import setting_id, setting_of, setting_tag, sweep_tag
from onebp.report.tables import efficiency_table, main_table, render

KS = (5, 10, 20)
N_USERS = 200


def fake_run(root: Path, dataset: str, method: str, seed: int, per_user: dict[str, np.ndarray],
             setting: str = "main-00000000", protocol: str = "clean", cfg: dict | None = None,
             epoch_seconds: float = 1.0) -> Path:
    """A finished run directory in the format `onebp train` writes."""
    d = root / "runs" / dataset / method / setting / protocol / f"seed{seed}"
    d.mkdir(parents=True)
    test = {k: float(v.mean()) for k, v in per_user.items()}
    valid = {k: v * 0.9 for k, v in test.items()}
    metrics = {
        "method": method, "dataset": dataset, "seed": seed, "protocol": protocol,
        "selected_epoch": 7, "epochs_run": 10, "stopped_early": True,
        "valid": valid, "test": test,
        "timing": {"epoch_seconds_median": epoch_seconds, "eval_seconds_median": 0.1,
                   "train_seconds_total": 10 * epoch_seconds, "seconds_to_selected": 7 * epoch_seconds},
        "memory": {"peak_rss_mb": 300.0 + seed, "peak_gpu_mb": 0.0}, "device": "cpu",
    }
    if protocol == "paper":
        metrics["best_on_test"] = {k: v + 0.01 for k, v in test.items()}
        metrics["best_on_test_epoch"] = {k: 5 for k in test}
    (d / "metrics.json").write_text(json.dumps(metrics))
    (d / "config.json").write_text(json.dumps({"method": method, "dataset": dataset, "seed": seed,
                                               "protocol": protocol, **(cfg or {"beta": 0.99})}))
    (d / "env.json").write_text("{}")
    epochs = np.arange(1, 11)
    curve = {"epoch": epochs, "loss": 1.0 / epochs}
    for c in ("seconds_sample", "seconds_step", "seconds_aggregate", "seconds_eval", "peak_gpu_mb"):
        curve[c] = 0.0
    curve["seconds_train"], curve["peak_rss_mb"] = epoch_seconds, 300.0
    for k in KS:
        curve[f"valid/ndcg@{k}"] = test[f"ndcg@{k}"] * epochs / 10
        curve[f"valid/recall@{k}"] = test[f"recall@{k}"] * epochs / 10
    pd.DataFrame(curve).to_csv(d / "curve.csv", index=False)
    np.savez(d / "per_user_test.npz", user=np.arange(N_USERS, dtype=np.int64), **per_user)
    return d


def per_user(base: np.ndarray, shift: float) -> dict[str, np.ndarray]:
    return {f"{m}@{k}": np.clip(base * (1 + 0.1 * i) + shift, 0, 1)
            for i, k in enumerate(KS) for m in ("recall", "ndcg")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("results")
    rng = np.random.default_rng(0)
    dirs = []
    for seed in range(5):
        base = rng.uniform(0.1, 0.5, N_USERS)
        # onebp beats "twobp" by 0.05 on every user (plus noise): a real difference.
        dirs.append(fake_run(root, "toy", "onebp", seed, per_user(base + rng.normal(0, 0.01, N_USERS), 0.05)))
        dirs.append(fake_run(root, "toy", "twobp", seed, per_user(base, 0.0), epoch_seconds=2.0))
        # "same": onebp's values plus noise that is exactly symmetric over users: no difference.
        ref = np.load(dirs[-2] / "per_user_test.npz")
        e = rng.normal(0, 0.02, N_USERS // 2)
        noise = np.concatenate([e, -e])
        same = {k: ref[k] + noise for k in ref.files if k != "user"}
        dirs.append(fake_run(root, "toy", "same", seed, same))
    return root, dirs


def test_layout_roundtrip() -> None:
    sid = setting_id({"beta": 0.9, "lr": 1e-3}, sweep_tag("beta", 0.9))
    assert sid.startswith("beta=0.9-") and setting_tag(sid) == "beta=0.9"
    assert setting_id({"lr": 1e-3, "beta": 0.9}) == setting_id({"beta": 0.9, "lr": 1e-3})
    assert setting_id({"beta": 0.9}) != setting_id({"beta": 0.99})
    assert setting_of("results/runs/ml-1m/onebp/main-abcdef12/clean/seed3") == "main-abcdef12"


def test_collect_long_table(runs: tuple[Path, list[Path]]) -> None:
    _, dirs = runs
    df, per_run = collect(dirs)
    assert list(df.columns[:9]) == ["dataset", "method", "setting", "seed", "protocol", "split", "metric", "k", "value"]
    assert len(per_run) == 15
    row = df[(df.method == "twobp") & (df.seed == 2) & (df.split == "test") & (df.metric == "ndcg") & (df.k == 20)]
    assert len(row) == 1
    d = Path(row.run_dir.iloc[0])
    assert row.value.iloc[0] == pytest.approx(json.loads((d / "metrics.json").read_text())["test"]["ndcg@20"])
    assert set(df.split) == {"valid", "test", "timing", "memory", "train"}


def test_main_table_stats_bold_and_markers(runs: tuple[Path, list[Path]]) -> None:
    _, dirs = runs
    df, _ = collect(dirs)
    t = main_table(df, "clean", "test", reference="onebp")
    n = t.numbers.set_index(["method", "metric", "k"])
    for method in ("onebp", "twobp", "same"):
        vals = [json.loads((d / "metrics.json").read_text())["test"]["recall@10"] for d in dirs if d.parts[-4] == method]
        assert n.loc[(method, "recall", 10), "mean"] == pytest.approx(np.mean(vals))
        assert n.loc[(method, "recall", 10), "std"] == pytest.approx(np.std(vals, ddof=1))
        assert n.loc[(method, "recall", 10), "n_seeds"] == 5
    assert n.loc[("twobp", "ndcg", 20), "sig_seeds"] and n.loc[("twobp", "ndcg", 20), "sig_users"]
    assert not n.loc[("same", "ndcg", 20), "sig_seeds"] and not n.loc[("same", "ndcg", 20), "sig_users"]
    md = render(t, "md").set_index("method")
    assert md.loc["twobp", "NDCG@20"].endswith("†‡")
    assert "†" not in md.loc["same", "NDCG@20"] and "‡" not in md.loc["same", "NDCG@20"]
    # Best mean per column in bold: onebp or "same" (equal means), never twobp.
    assert "**" not in md.loc["twobp", "Recall@5"]
    assert any("**" in md.loc[m, "Recall@5"] for m in ("onebp", "same"))
    assert "Wilcoxon" in t.caption and "t-test" in t.caption


def test_efficiency_table(runs: tuple[Path, list[Path]]) -> None:
    df, _ = collect(runs[1])
    t = efficiency_table(df, "clean").numbers.set_index("method")
    assert t.loc["twobp", "epoch_seconds_median"] == 2.0
    assert t.loc["onebp", "seconds_to_selected"] == 7.0
    assert t.loc["onebp", "peak_rss_mb"] == 304.0


def test_cli_collect_tables_figures(runs: tuple[Path, list[Path]], tmp_path: Path) -> None:
    root, dirs = runs
    # A sweep point of onebp over beta, to exercise the metric-vs-parameter figure.
    sweep_root = tmp_path / "extra"
    rng = np.random.default_rng(1)
    extra = [fake_run(sweep_root, "toy", "onebp", s, per_user(rng.uniform(0.1, 0.5, N_USERS), 0.0),
                      setting="beta=0.9-11111111", cfg={"beta": 0.9}) for s in range(2)]
    py = [sys.executable, "-m", "onebp", "report"]
    res, runs_csv = tmp_path / "results.csv", tmp_path / "runs.csv"
    subprocess.run([*py, "collect", *map(str, dirs + extra), "--out", str(res), "--runs-out", str(runs_csv)], check=True)
    df = load_results(res)
    assert df["run_dir"].map(lambda d: Path(d).is_dir()).all()  # every row traceable to a run on disk
    subprocess.run([*py, "tables", "--results", str(res), "--out-dir", str(tmp_path / "tables"),
                    "--methods", "onebp,twobp,same"], check=True)
    for name in ("main", "efficiency"):
        for ext in ("md", "tex", "csv", "html"):
            assert (tmp_path / "tables" / f"{name}.{ext}").stat().st_size > 0
    md = (tmp_path / "tables" / "main.md").read_text()
    assert md.index("| toy       | onebp") < md.index("twobp") and "Wilcoxon" in md
    assert r"\textbf" in (tmp_path / "tables" / "main.tex").read_text()
    subprocess.run([*py, "figures", "--results", str(res), "--runs", str(runs_csv), "--out-dir",
                    str(tmp_path / "fig"), "--sweep", "beta"], check=True)
    for name in ("curves", "time_quality", "epoch_time", "memory", "sweep_beta"):
        for ext in ("png", "pdf"):
            assert (tmp_path / "fig" / f"{name}.{ext}").stat().st_size > 1000


def test_report_jobs_fail_naming_a_missing_run_file(tmp_path: Path) -> None:
    """A run whose per-user file (or curve) is missing — unfinished, or not brought by a storage
    plugin — stops the report job with the file's name, never a silent p = 1 or a missing curve."""
    from onebp.report.figures import curves_frame

    rng = np.random.default_rng(3)
    dirs = [fake_run(tmp_path / "r", "toy", m, s, per_user(rng.uniform(0.1, 0.5, N_USERS), 0.0))
            for m in ("onebp", "twobp") for s in range(2)]
    (dirs[3] / "per_user_test.npz").unlink()
    py = [sys.executable, "-m", "onebp", "report"]
    res = tmp_path / "results.csv"
    subprocess.run([*py, "collect", *map(str, dirs), "--out", str(res), "--runs-out", str(tmp_path / "runs.csv")],
                   check=True)
    out = subprocess.run([*py, "tables", "--results", str(res), "--out-dir", str(tmp_path / "tables"),
                          "--methods", "onebp,twobp"], capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    assert f"{dirs[3] / 'per_user_test.npz'}: missing" in out.stderr
    (dirs[1] / "curve.csv").unlink()
    with pytest.raises(UserError, match=f"{dirs[1] / 'curve.csv'}: missing"):
        curves_frame(load_results(res), "clean", "valid/ndcg@20")


def test_markdown_tables_keep_the_digits_they_were_given(tmp_path) -> None:
    """tabulate re-parsed cells as numbers and dropped trailing zeros (0.4050 printed as 0.405)."""
    from onebp.report.tables import Table, write_plain

    cells = pd.DataFrame({"method": ["onebp"], "gap": ["0.4050"], "n": ["10"]})
    write_plain(Table(cells, cells, "caption"), tmp_path / "t", "tab:t")
    assert "| 0.4050 |" in (tmp_path / "t.md").read_text()
