"""Efficiency from the dedicated benchmark (``results/bench/<dataset>.json``, ``onebp bench-suite``),
not from the study's train jobs, which shared the machine's cores with each other.

Per dataset × method: seconds per training epoch (median over interleaved repeats, with min–max),
seconds per phase, seconds per full evaluation, time to quality, peak training memory and peak
evaluation memory (GPU; on the CPU the process's resident high-water mark, which after evaluation
can only be ≥ the training one).

Time to quality = wall seconds until the selected epoch, from the benchmark's clean timings and the
study's runs: ``selected_epoch × s/epoch + (selected_epoch // eval_every) × s/evaluation``, with the
median selected epoch of the method's main clean runs (their validation-selected epoch).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from onebp.errors import UserError
from onebp.report.layout import MAIN, run_eval_every, setting_tag
from onebp.report.tables import Table, _order

CAPTION = (
    "Efficiency from the dedicated benchmark (rule bench: the only job running, methods interleaved, "
    "{repeats}): median over repeats [min–max] of each repeat's median seconds per training epoch and "
    "its phases (sample / prepare / step / aggregate), seconds per full-ranking evaluation; time to "
    "quality = wall seconds until the selected epoch (median validation-selected epoch of the main clean "
    "runs × s/epoch + its evaluations × s/eval, per repeat, then the median over repeats, as claim 2b); peak memory of training (before any evaluation) and, "
    "for GPUs, of evaluation alone. Device: {device}."
)


def _bench_records(p: Path) -> list[dict]:
    """The ``records`` of one benchmark file; UserError naming the file when it cannot be read or
    is not what ``onebp bench-suite --out`` writes (an object with a list of record objects)."""
    if p.is_dir():
        raise UserError(f"{p}: a directory, not a benchmark file (give the .json of `onebp bench-suite`)")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{p}: no such benchmark file") from None
    except UnicodeDecodeError:
        raise UserError(f"{p}: not a benchmark file (not UTF-8 text)") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{p}: not a benchmark file (not valid JSON: {exc})") from None
    except OSError as exc:
        raise UserError(f"{p}: cannot read the benchmark file ({exc.strerror})") from None
    records = data.get("records") if isinstance(data, dict) else None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise UserError(f"{p}: not a benchmark file (expected a JSON object with a 'records' list of "
                        "objects, as `onebp bench-suite --out` writes)")
    return records


#: what every record must carry: the pairing key and the two timings the claims and the table read
TIMES = ("epoch_seconds_median", "eval_seconds_median")


def _record_error(p: Path, i: int, r: dict, what: str) -> UserError:
    """One line naming the file and the record (its index in ``records``, its method and repeat)."""
    tag = ", ".join(f"{k} {r[k]!r}" for k in ("method", "repeat") if r.get(k) is not None)
    return UserError(f"{p}: records[{i}]{f' ({tag})' if tag else ''}: {what}")


def _checked_records(p: Path) -> list[dict]:
    """``_bench_records`` with every record checked: a method, a device name, positive finite timings, and
    a whole ``repeat`` ≥ 0 on every record or on none. A NaN or non-positive time would otherwise be
    dropped by the paired test without a word, and a repeat number on some records only would pair
    numbered repeats with record positions. A file with no repeat numbers (written before bench-suite
    numbered them) gets its records' order within each method, the pairing the claims always used."""
    records = _bench_records(p)
    for i, r in enumerate(records):
        if not isinstance(r.get("method"), str) or not r["method"]:
            raise _record_error(p, i, r, "no method (a non-empty string, as `onebp bench` writes)")
        if r.get("device_name") is None:
            raise _record_error(p, i, r, "no device_name (as `onebp bench` writes)")
        for key in TIMES:
            v = r.get(key)
            if v is None:
                raise _record_error(p, i, r, f"no {key}")
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise _record_error(p, i, r, f"{key} {v!r} is not a number of seconds")
            # an int is finite (math.isfinite overflows on a huge one); NaN > 0 is False
            if not (v > 0 and (isinstance(v, int) or math.isfinite(v))):
                raise _record_error(p, i, r, f"{key} {v!r} is not a positive finite number of seconds")
        rep = r.get("repeat")
        if rep is not None and (isinstance(rep, bool) or not isinstance(rep, int) or rep < 0):
            raise _record_error(p, i, r, f"repeat {rep!r} is not a whole number ≥ 0")
    numbered = [r.get("repeat") is not None for r in records]
    if any(numbered) and not all(numbered):
        i = numbered.index(False)
        raise _record_error(p, i, records[i], f"no repeat number, while {sum(numbered)} of the file's "
                            f"{len(records)} records have one (pairing by number would shift)")
    if not any(numbered):
        count: dict[str, int] = {}
        numbered_records = []
        for r in records:
            count[r["method"]] = count.get(r["method"], -1) + 1
            numbered_records.append({**r, "repeat": count[r["method"]]})
        records = numbered_records
    return records


def load_bench(paths: list[str | Path]) -> pd.DataFrame:
    """Every repeat's record of every benchmark file, with its dataset (the file's stem); a record that
    is not a valid repeat, or a (dataset, method, repeat) met twice — within a file or across two files
    with the same name, which would be merged into one benchmark — is a UserError naming file and record."""
    rows = []
    first: dict[tuple[str, str, int], tuple[int, Path, int]] = {}  # key -> (file's place, file, record)
    for n, p in enumerate(map(Path, paths)):
        for i, r in enumerate(_checked_records(p)):
            key = (p.stem, r["method"], int(r["repeat"]))
            if key in first:
                m, q, j = first[key]
                where = f"records[{j}]" if m == n else f"{q} records[{j}]"
                raise _record_error(p, i, r, f"the same dataset {p.stem!r}, method and repeat as {where} "
                                    "(each repeat of each method once; two benchmark files with the same name?)")
            first[key] = (n, p, i)
            flat = {k: v for k, v in r.items() if not isinstance(v, dict)}
            for ph, v in (r.get("phase_seconds_median") or {}).items():
                flat[f"phase_{ph}"] = v
            rows.append({"dataset": p.stem, **flat})
    return pd.DataFrame(rows)


def _selected(df: pd.DataFrame) -> pd.DataFrame:
    """Median selected epoch and eval_every of each method's main clean runs."""
    tags = df["setting"].astype(str).map(setting_tag)
    sel = df[(tags == MAIN) & (df["protocol"] == "clean") & (df["split"] == "train")
             & (df["metric"] == "selected_epoch")]
    rows = []
    for (ds, m), g in sel.groupby(["dataset", "method"]):
        every = [run_eval_every(d) for d in g["run_dir"].astype(str)]
        rows.append({"dataset": ds, "method": m, "selected_epoch": float(g["value"].median()),
                     "eval_every": int(np.median(every)) if every else 1})
    return pd.DataFrame(rows, columns=["dataset", "method", "selected_epoch", "eval_every"])


def time_to_quality(selected_epoch: float, eval_every: int, epoch_s: pd.Series, eval_s: pd.Series) -> pd.Series:
    """Wall seconds until the selected epoch, per benchmark repeat: its epochs and the evaluations
    made up to it (NaN when the selected epoch is not known)."""
    if not np.isfinite(selected_epoch):
        return epoch_s * np.nan
    return selected_epoch * epoch_s + (selected_epoch // eval_every) * eval_s


def bench_table(bench: pd.DataFrame, results: pd.DataFrame | None = None,
                methods: list[str] | None = None, datasets: list[str] | None = None) -> Table:
    if bench.empty:
        raise ValueError("no benchmark records")
    sel = _selected(results) if results is not None else pd.DataFrame(
        columns=["dataset", "method", "selected_epoch", "eval_every"])
    rows = []
    for (ds, m), g in bench.groupby(["dataset", "method"], sort=False):
        row: dict = {"dataset": ds, "method": m, "repeats": len(g), "device": g["device_name"].iloc[0]}
        for col in ["epoch_seconds_median", "eval_seconds_median", "peak_rss_train_mb", "peak_rss_mb",
                    "peak_gpu_train_mb", "peak_gpu_eval_mb"] + [c for c in g if c.startswith("phase_")]:
            v = pd.to_numeric(g[col], errors="coerce") if col in g else pd.Series(dtype=float)
            v = v.dropna()
            row[col] = float(v.median()) if len(v) else np.nan
            row[f"{col}_min"] = float(v.min()) if len(v) else np.nan
            row[f"{col}_max"] = float(v.max()) if len(v) else np.nan
        s = sel[(sel["dataset"] == ds) & (sel["method"] == m)]
        row["selected_epoch"] = float(s["selected_epoch"].iloc[0]) if len(s) else np.nan
        every = int(s["eval_every"].iloc[0]) if len(s) else 1
        # per repeat, then the median, as claim 2b computes it (the median of sums, not the sum of medians)
        per_repeat = time_to_quality(row["selected_epoch"], every,
                                     pd.to_numeric(g["epoch_seconds_median"], errors="coerce"),
                                     pd.to_numeric(g["eval_seconds_median"], errors="coerce")).dropna()
        row["time_to_quality_s"] = float(per_repeat.median()) if len(per_repeat) else np.nan
        rows.append(row)
    num = pd.DataFrame(rows)
    ds_order, m_order = _order(num["dataset"], datasets), _order(num["method"], methods)
    num = num.assign(_d=num["dataset"].map(ds_order.index), _m=num["method"].map(m_order.index))
    num = num.sort_values(["_d", "_m"]).drop(columns=["_d", "_m"]).reset_index(drop=True)

    def g3(v: float) -> str:
        # three significant digits, kept as written ("2.10", not "2.1"; no exponent for small times)
        if not np.isfinite(v):
            return ""
        return f"{v:.0f}" if abs(v) >= 100 else f"{v:#.3g}" if abs(v) >= 1e-3 else f"{v:.2e}"

    cells = num[["dataset", "method"]].copy()
    cells["s / epoch [min–max]"] = [f"{g3(r.epoch_seconds_median)} [{g3(r.epoch_seconds_median_min)}–"
                                     f"{g3(r.epoch_seconds_median_max)}]" for r in num.itertuples()]
    phases = [c for c in ("phase_sample", "phase_prepare", "phase_step", "phase_aggregate") if c in num]
    cells["sample / prepare / step / aggregate (s)"] = [
        " / ".join(g3(getattr(r, c)) for c in phases) for r in num.itertuples()]
    cells["s / eval"] = num["eval_seconds_median"].map(g3)
    cells["selected epoch"] = num["selected_epoch"].map(g3)
    cells["time to quality (s)"] = num["time_to_quality_s"].map(g3)
    cells["peak train RSS MB"] = num["peak_rss_train_mb"].map(g3)
    if num["peak_gpu_train_mb"].notna().any():
        cells["peak train GPU MB"] = num["peak_gpu_train_mb"].map(g3)
        cells["peak eval GPU MB"] = num["peak_gpu_eval_mb"].map(g3)
    cells["repeats"] = num["repeats"].astype(str)
    caption = CAPTION.format(repeats=f"{int(num['repeats'].min())} repeats per method",
                             device=", ".join(sorted(set(map(str, num["device"])))))
    return Table(cells, num, caption)
