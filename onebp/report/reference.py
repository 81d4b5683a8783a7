"""``onebp report reference``: freeze a finished study as shipped reference results.

Copies from a workflow directory into ``results/reference/<name>/``: the long results table
(``results.csv``, ``runs.csv``), ``REPORT.md``, the tables (``tables/*.md``, ``*.csv``), the figures
(``figures/*.png``, unless ``--no-figures``), the benchmark files, the tuning results
(``tuning/<dataset>/<method>/best.json``, ``trials.csv``), and of every run its
``config.json``, ``env.json`` and ``metrics.json`` (never checkpoints or per-user arrays), and writes a
README saying how it was made: the command, its wall time, the machine and the code each run ran (from
the runs' env.json: a study resumed across sessions may span several commits, and the README counts them).
A rerun is then checked with ``onebp report compare results/results.csv results/reference/<name>/results.csv``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd

from onebp.atomic import atomic_write
from onebp.errors import UserError
from onebp.safe_paths import inside, safe_name

RUN_FILES = ("config.json", "env.json", "metrics.json", "curve.csv")  # curve.csv: the cap rule's trend test


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


def freeze(workdir: str | Path, out: str | Path, command: str, wall: str, note: str = "",
           figures: bool = True) -> list[Path]:
    workdir, out = Path(workdir), Path(out)
    res = workdir / "results"
    if not (res / "results.csv").exists():
        raise UserError(f"{res / 'results.csv'}: missing (run the workflow first)")
    plan: list[tuple[Path, str]] = []  # (source, path under --out): all checked before any copy
    for name in ("results.csv", "runs.csv", "REPORT.md", "report.md"):
        if (res / name).exists():
            plan.append((res / name, name))
    patterns = ("tables/*.md", "tables/*.csv", "bench/*.json", "bench/*.csv",
                "tuning/*/*/best.json", "tuning/*/*/trials.csv") + (("figures/*.png",) if figures else ())
    for pattern in patterns:
        for f in sorted(res.glob(pattern)):
            plan.append((f, str(f.relative_to(res))))
    runs = pd.read_csv(res / "results.csv", usecols=["run_dir"])["run_dir"].drop_duplicates()
    envs = []
    res_norm = Path(os.path.normpath(res))
    for d in runs:
        # Collapse '..' first (lexically: a symlinked results/runs keeps its layout), so that
        # "results/runs/../../x" is not taken for a path under results/.
        d = Path(os.path.normpath(Path(d) if Path(d).is_absolute() else workdir / d))
        for f in RUN_FILES:
            if (d / f).exists():
                rel = ((d / f).relative_to(res_norm) if d.is_relative_to(res_norm)
                       else Path("runs") / safe_name(d.name, f"{res / 'results.csv'}: run_dir {str(d)!r}: name") / f)
                plan.append((d / f, str(rel)))
                if f == "env.json":
                    envs.append(d / f)
    # Every destination under --out, or nothing is written (a run_dir with '..' must not escape), and
    # the README's machine and code lines read before anything is copied.
    targets = [(src, inside(out, rel, "reference file")) for src, rel in plan]
    env_records = [_read_env(p) for p in envs]  # read once, for both README sections
    machines, code = machine(env_records), code_revisions(env_records)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for src, dst in targets:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        written.append(dst)
    readme = out / "README.md"
    atomic_write(readme, "\n".join([
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
    ]))
    written.append(readme)
    return written
