"""``onebp report reference``: freeze a finished study as shipped reference results.

Copies from a workflow directory into ``results/reference/<name>/``: the long results table
(``results.csv``, ``runs.csv``), ``REPORT.md``, the tables (``tables/*.md``, ``*.csv``), the figures
(``figures/*.png``, unless ``--no-figures``), the benchmark files, the tuning results
(``tuning/<dataset>/<method>/best.json``, ``trials.csv``), and of every run its
``config.json``, ``env.json`` and ``metrics.json`` (never checkpoints or per-user arrays), and writes a
README saying how it was made: the command, its wall time, the machine and the code each run ran (from
the runs' env.json: a study resumed across sessions may span several commits, and the README counts them).
A rerun is then checked with ``onebp report compare results/results.csv results/reference/<name>/results.csv``.

Only a finished, consistent study is frozen: every run results.csv lists must exist with its
metrics.json, and results.csv's values must be those of the runs' metrics.json
(:func:`check_metrics_agree`). A run under ``results/`` keeps its path there (``runs/...``); a run
elsewhere (an absolute or ``..`` run_dir) is kept under ``runs/`` by its path below the folder all such
runs share, and the frozen tables' ``run_dir`` names where it was put (``results/runs/...``, which
``report`` commands find under the reference's ``runs/``). The reference is built in a temporary
folder next to ``--out`` and swapped in only when complete, replacing an earlier freeze whole.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

import pandas as pd

from onebp.atomic import sibling_folder, swap_in_folder
from onebp.errors import UserError
from onebp.safe_paths import inside, safe_name

RUN_FILES = ("config.json", "env.json", "metrics.json", "curve.csv")  # curve.csv: the cap rule's trend test
README_TITLE = "# Reference results: "  # the first line of a README this command wrote (see _check_out)
#: results.csv rows the epoch-cap rule computes (onebp.report.epoch_cap.cap_values) rather than copies
#: from metrics.json: a rule revised since the table was collected changes them, not the runs.
DERIVED = ("epochs_cap", "cap_bound", "cap_gain", "cap_noise")
RECOLLECT = "results.csv was not collected from these runs (collect it again: `onebp report collect`)"


def _read_env(path: Path) -> dict:
    """A run's env.json, or a one-line error naming it (a damaged file must not freeze half a reference)."""
    try:
        env = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: cannot read the run's environment record ({type(exc).__name__}); "
                        "restore it from the study's saved records or rerun the run") from None
    if not isinstance(env, dict):
        raise UserError(f"{path}: not a JSON object (a run's environment record)")
    return env


def machine(envs: list[dict]) -> str:
    """One line per distinct machine the runs ran on (device, processor, platform, torch, threads)."""
    seen = []
    for e in envs:
        line = (f"{e.get('device_name') or e.get('device')} ({e.get('device')}), processor "
                f"{e.get('processor')}, {e.get('platform')}, Python {e.get('python')}, torch "
                f"{(e.get('packages') or {}).get('torch')}, {e.get('torch_threads')} torch thread(s)")
        if line not in seen:
            seen.append(line)
    return "\n".join(f"- {s}" for s in seen) or "- (no env.json found)"


def code_revisions(envs: list[dict]) -> str:
    """One line per commit the runs ran from (``git_revision`` in env.json, shortened), with how many
    runs; a run whose tree had uncommitted changes (``git_dirty``) is counted apart — its code is not
    that commit's. Most runs first."""
    counts: dict[str, int] = {}
    for e in envs:
        rev = e.get("git_revision")
        label = f"`{str(rev)[:7]}`" if rev else "no git revision recorded (not run from a checkout)"
        if rev and e.get("git_dirty"):
            label += " with uncommitted changes"
        counts[label] = counts.get(label, 0) + 1
    lines = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return "\n".join(f"- {label}: {n} run{'s' if n != 1 else ''}" for label, n in lines) or "- (no env.json found)"


def _read_results(path: Path) -> pd.DataFrame:
    """The study's results.csv (read as ``report compare`` reads a reference: empty, header-only, cut
    short or non-numeric is refused naming the file and row), with a run_dir in every row."""
    from onebp.report.collect import load_results

    df = load_results(path)
    if "run_dir" not in df.columns:
        raise UserError(f"{path}: no run_dir column (a reference keeps the run of every row; "
                        "write the table with `onebp report collect`)")
    empty = df["run_dir"].isna() | (df["run_dir"].astype(str).str.strip() == "")
    if empty.any():
        row = int(empty.to_numpy().nonzero()[0][0])
        raise UserError(f"{path}:{row + 2}: empty run_dir (every row must name the run it comes from)")
    return df.assign(run_dir=df["run_dir"].astype(str))


def _run_path(workdir: Path, run_dir: str) -> Path:
    """Where a run_dir of results.csv (relative to the workflow directory) lies. '..' is collapsed
    lexically, not by resolving links (a symlinked results/runs keeps its layout), so that
    "results/runs/../../x" is not taken for a path under results/."""
    p = Path(run_dir)
    return Path(os.path.abspath(p if p.is_absolute() else workdir / p))


#: what an unfinished run leaves in its directory (the trainer's resume state and checkpoint); report
#: reads finished runs only and imports nothing above core, so the names are repeated here
IN_PROGRESS = ("run_state.json", "checkpoint.pt")


def _check_finished(where: str, d: Path) -> None:
    """UserError unless ``d`` is a finished run's directory: a reference without one of its runs, or
    with a run still being trained, would not be the study its results.csv describes."""
    if not d.is_dir():
        raise UserError(f"{where}: {'not a directory' if d.exists() else 'no such directory'} ({d}); "
                        "a reference keeps every run its results.csv lists")
    if not (d / "metrics.json").is_file():
        busy = [f for f in IN_PROGRESS if (d / f).exists()]
        state = (f"not finished (has {', '.join(busy)} but no metrics.json: running, failed or interrupted)"
                 if busy else "no metrics.json (the run did not finish)")
        raise UserError(f"{where}: {state}; finish the study before freezing it")


def _number(v: object) -> float | None:
    """A table or metrics.json value as a float (None and NaN alike: pandas writes None as an empty
    cell), or None when it is not a number."""
    if v is None:
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _same(a: object, b: object) -> bool:
    x, y = _number(a), _number(b)
    if x is None or y is None:
        return False
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    # pandas writes floats exactly (repr); the margin only forgives a table written at a shorter precision
    return abs(x - y) <= 1e-12 * max(1.0, abs(y))


def check_metrics_agree(table: str | Path, df: pd.DataFrame, runs: Mapping[str, Path]) -> None:
    """UserError naming the first row of ``table`` (its rows ``df``, as ``load_results`` reads them)
    whose value or labels (dataset, method, seed, protocol) differ from what ``onebp report collect``
    makes of its run's metrics.json, or a run whose metrics.json holds a value the table lacks.
    ``runs``: each run_dir as written in the table -> the run's directory. The cap rule's rows
    (:data:`DERIVED`) are computed, not recorded, and are not compared."""
    from onebp.report.collect import run_rows

    for run_dir, rows in df.groupby("run_dir", sort=False):
        d = runs[str(run_dir)]
        expected = {(r["split"], r["metric"], r["k"]): r for r in run_rows(d)
                    if not (r["split"] == "train" and r["metric"] in DERIVED)}
        seen = set()
        for i, row in rows.iterrows():
            k = None if pd.isna(row["k"]) else int(row["k"])
            key = (str(row["split"]), str(row["metric"]), k)
            if key[0] == "train" and key[1] in DERIVED:
                continue
            what = f"{key[0]} {key[1]}" + ("" if k is None else f"@{k}")
            where = f"{table}:{int(i) + 2}: run_dir {run_dir!r}"  # line: the header, then row i
            want = expected.get(key)
            if want is None:
                raise UserError(f"{where}: {what} is not in its metrics.json ({d / 'metrics.json'}); {RECOLLECT}")
            for col in ("dataset", "method", "seed", "protocol"):
                if str(row[col]) != str(want[col]):
                    raise UserError(f"{where}: {col} {row[col]!r}, its metrics.json has {want[col]!r}; {RECOLLECT}")
            if not _same(row["value"], want["value"]):
                raise UserError(f"{where}: {what} is {row['value']!r}, its metrics.json has {want['value']!r}; "
                                f"{RECOLLECT}")
            seen.add(key)
        lacking = [key for key in expected if key not in seen]
        if lacking:
            split, metric, k = lacking[0]
            raise UserError(f"{table}: run_dir {run_dir!r}: no row for {split} {metric}"
                            f"{'' if k is None else f'@{k}'}, which its metrics.json has; {RECOLLECT}")


def _destinations(res: Path, dirs: Mapping[Path, str], table: Path) -> dict[Path, Path]:
    """Where under --out each run is kept (``dirs``: run directory -> its run_dir as written). Under
    results/: its path there, as before. Elsewhere: ``runs/`` + its path below the folder all such
    runs share — the last component alone would file onebp's seed0 and twobp's seed0 as one run.
    UserError when two runs would still share a place."""
    res = Path(os.path.abspath(res))
    outside = {d for d in dirs if not d.is_relative_to(res)}
    root = Path(os.path.commonpath([str(d.parent) for d in outside])) if outside else res
    dest: dict[Path, Path] = {}
    for d, run_dir in dirs.items():
        rel = d.relative_to(root if d in outside else res)
        if not rel.parts:
            raise UserError(f"{table}: run_dir {run_dir!r} is {'the results folder' if d == res else 'a file system root'}, "
                            "not a run directory")
        if d in outside:
            for part in rel.parts:  # names that come from outside the workflow become paths under --out
                safe_name(part, f"{table}: run_dir {run_dir!r}: folder name")
            rel = Path("runs") / rel
        dest[d] = rel
    taken: dict[Path, Path] = {}
    for d, rel in dest.items():
        other = taken.setdefault(rel, d)
        if other != d:
            raise UserError(f"{table}: run_dir {dirs[other]!r} and {dirs[d]!r} would both be kept as {rel}; "
                            "move the runs outside results/ under one folder of their own")
    return dest


def _retarget(path: Path, new_of: Callable[[str], str | None]) -> str | None:
    """``path`` (a table with a run_dir column) with each run_dir replaced by ``new_of``'s answer
    (None: kept), or None when nothing changes — the file is then copied byte for byte."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from None
    if not rows or "run_dir" not in rows[0]:
        return None
    col, changed = rows[0].index("run_dir"), False
    for row in rows[1:]:
        new = new_of(row[col]) if col < len(row) else None
        if new is not None and new != row[col]:
            row[col], changed = new, True
    if not changed:
        return None
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


_FIGURE_LINK = re.compile(r"!?\[([^\]]*)\]\((figures/[^)\s]+)\)")


def _without_figure_links(path: Path) -> str | None:
    """A report's Markdown with its links to ``figures/`` replaced by a note, for a reference frozen
    without figures (``--no-figures``): its REPORT.md must not point at files it does not ship. None
    when the report links no figure (copied byte for byte)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from None
    new = _FIGURE_LINK.sub(lambda m: f"*({m.group(2)}: figure not shipped with this reference)*", text)
    return None if new == text else new


def _check_out(out: Path, sources: list[Path]) -> Path:
    """--out's real path, after refusing what replacing it whole would destroy: a folder holding a
    file being frozen (--out = the workflow's results/ or a folder above it), or a non-empty folder
    this command did not write (a mistyped --out must not wipe an unrelated folder)."""
    phys = Path(os.path.realpath(out))
    if phys.exists() and not phys.is_dir():
        raise UserError(f"--out {out}: not a directory")
    for src in sources:
        if Path(os.path.realpath(src)).is_relative_to(phys):
            raise UserError(f"--out {out} holds {src}, which it would freeze; give the reference a folder "
                            "of its own (e.g. results/reference/<name>)")
    if phys.is_dir() and any(phys.iterdir()):
        try:
            first = (phys / "README.md").read_text(encoding="utf-8").partition("\n")[0]
        except (OSError, UnicodeDecodeError):
            first = ""
        if not first.startswith(README_TITLE):
            raise UserError(f"--out {out}: a non-empty folder that is not a frozen reference (no README.md "
                            "written by `onebp report reference`); refusing to replace it: give a new or empty folder")
    return phys


def _build_and_swap(phys: Path, files: list[tuple[Path | None, Path, str | None]]) -> None:
    """Write ``files`` ((source to copy or None, path under the reference, text or None)) into a new
    folder next to ``phys`` and swap it in for ``phys``.

    Why replace rather than refuse a non-empty --out: a reference folder is entirely this command's
    output, so re-freezing into it (a study finished again, a fix) means replacing it, and merging
    into it left an earlier freeze's files next to the new ones. Building apart keeps the old
    reference untouched until the new one is complete; a failure midway removes the new folder and
    leaves --out as it was. (The two renames that swap them leave --out absent for an instant; the
    old one is deleted only after the new one is in place.)"""
    tmp = sibling_folder(phys, "new")  # shared like results/
    try:
        for src, rel, text in files:
            dst = tmp / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                if text is None:
                    shutil.copyfile(src, dst)
                else:
                    dst.write_text(text, encoding="utf-8")
            except OSError as exc:
                raise UserError(f"{src if text is None else dst}: cannot copy ({exc.strerror or exc}); "
                                "--out left as it was") from None
        swap_in_folder(tmp, phys)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def freeze(workdir: str | Path, out: str | Path, command: str, wall: str, note: str = "",
           figures: bool = True) -> list[Path]:
    """Freeze the finished study in ``workdir`` as the reference folder ``out``; the paths written.
    Everything is checked, and every file read, before anything is written: a UserError leaves
    ``out`` as it was."""
    workdir, out = Path(workdir), Path(out)
    res = workdir / "results"
    table = res / "results.csv"
    if not table.exists():
        raise UserError(f"{table}: missing (run the workflow first)")
    df = _read_results(table)
    runs: dict[str, Path] = {}  # run_dir as written -> its directory
    dirs: dict[Path, str] = {}  # each directory once -> its run_dir as first written
    for i, run_dir in df["run_dir"].items():
        if run_dir in runs:
            continue
        d = runs[run_dir] = _run_path(workdir, run_dir)
        if d not in dirs:
            dirs[d] = run_dir
            _check_finished(f"{table}:{int(i) + 2}: run_dir {run_dir!r}", d)
    check_metrics_agree(table, df, runs)
    dest = _destinations(res, dirs, table)

    plan: list[tuple[Path, Path]] = []  # (source, path under --out)
    for name in ("results.csv", "runs.csv", "REPORT.md", "report.md"):
        if (res / name).exists():
            plan.append((res / name, Path(name)))
    patterns = ("tables/*.md", "tables/*.csv", "bench/*.json", "bench/*.csv",
                "tuning/*/*/best.json", "tuning/*/*/trials.csv") + (("figures/*.png",) if figures else ())
    for pattern in patterns:
        for f in sorted(res.glob(pattern)):
            plan.append((f, f.relative_to(res)))
    envs = []
    for d, rel in dest.items():
        for f in RUN_FILES:
            if (d / f).exists():
                plan.append((d / f, rel / f))
                if f == "env.json":
                    envs.append(d / f)
    by_dest: dict[Path, Path] = {}
    for src, rel in plan:
        if not src.is_file():  # a folder in a file's place would fail the copy halfway
            raise UserError(f"{src}: not a file (a reference copies it as {rel})")
        other = by_dest.setdefault(rel, src)
        if other != src:
            raise UserError(f"{other} and {src} would both be frozen as {rel}")
        inside(out, rel, "reference file")  # a run_dir with '..' must not lead out of --out

    # The frozen tables name each run where the reference keeps it (results/<path under --out>, the
    # form `report` commands look up under a reference's folder), not where it lay in the workflow.
    def new_run_dir(run_dir: str) -> str | None:
        rel = dest.get(_run_path(workdir, run_dir))
        return None if rel is None else (Path("results") / rel).as_posix()

    texts = {rel: _retarget(src, new_run_dir) for src, rel in plan if rel in (Path("results.csv"), Path("runs.csv"))}
    if not figures:
        texts.update({rel: _without_figure_links(src) for src, rel in plan if rel.suffix == ".md"})
    env_records = [_read_env(p) for p in envs]  # read once, for both README sections
    machines, code = machine(env_records), code_revisions(env_records)
    phys = _check_out(out, [src for src, _ in plan])
    readme = "\n".join([
        f"# Reference results: {out.name}",
        "",
        "Made by running, from the repository root:",
        "",
        "```",
        command,
        "```",
        "",
        f"Wall time: {wall}.",
        "",
        "Machine (from the runs' env.json):",
        "",
        machines,
        "",
        "Code (the commit each run ran from, from its env.json):",
        "",
        code,
        "",
        *( [note, ""] if note else [] ),
        "Contents: `results.csv` (the long results table), `runs.csv`, `REPORT.md` (the reproduction "
        "report), `tables/`, " + ("`figures/`, " if figures else "") + "`bench/` (the dedicated benchmark), "
        "`tuning/<dataset>/<method>/{best.json,trials.csv}` (when tuned), "
        "and `runs/.../{config,env,metrics}.json` and `curve.csv` of every run (no checkpoints, no per-user arrays).",
        "",
        "Check a rerun against it:",
        "",
        "```",
        f"onebp report compare results/results.csv {out.as_posix()}/results.csv",
        "```",
        "",
        "It prints per cell (dataset, method, setting, protocol, split, metric) the rerun's value, this "
        "reference's, and whether they differ by more than this reference's seed-to-seed spread allows "
        "(a check of the mean and one of every rerun seed; a NaN value fails; `onebp report compare --help` "
        "states the rule); it exits 1 when any cell disagrees or none was compared.",
        "",
    ])
    files: list[tuple[Path | None, Path, str | None]] = [(src, rel, texts.get(rel)) for src, rel in plan]
    files.append((None, Path("README.md"), readme))
    _build_and_swap(phys, files)
    return [out / rel for _, rel, _ in files]
