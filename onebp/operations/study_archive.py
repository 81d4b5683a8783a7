"""``onebp study save|restore``: a study's finished run records, kept in the repository between machines.

A study longer than one machine's life (a session, a preemptible node, a laptop closed overnight)
loses its ignored ``results/`` with the machine. ``save`` copies what every *finished* job wrote —
nothing else — into an archive folder that can be committed; ``restore`` puts it back into a fresh
working directory so that Snakemake skips those jobs and runs only the rest.

What is kept, by relative path (the same under the archive as under the working directory):

* each finished run and tuning trial (a folder under ``results/`` with ``metrics.json``, written
  last by ``onebp train``): ``config.json``, ``env.json``, ``metrics.json``, ``curve.csv`` and
  ``per_user_test.npz`` — the train rule's outputs. Checkpoints and best-model weights are left out:
  a finished run never needs them, and they are the large files;
* each tuning summary (``results/tuning/<dataset>/<method>/{best.json,trials.csv}``), which every
  run of a tuned method reads;
* the dedicated benchmark (``results/bench/<dataset>.{json,csv}``).

Aggregates (``results.csv``, tables, figures, REPORT.md) are not kept: they are remade in minutes.

A record is whole or refused: it must hold every output its rule declares (``REQUIRED``: a run's
``per_user_test.npz``, a trial's ``curve.csv``, ...) and each file must read back (JSON files parse to
an object, the npz opens with every array, CSV files have their header and end in a newline). ``save``
refuses a damaged record in the working directory and ``restore`` one in the archive, both naming the
file and before writing anything. Within a record the file that marks it finished (``metrics.json``; a
summary's ``best.json``, a benchmark's JSON) is copied last, so a save or restore cut short (a full
disk) leaves a record that looks unfinished — skipped, and completed by the next call — never one
that looks finished with files missing.

``restore`` refuses before writing anything when a kept run's ``config.json`` records a split
fingerprint (``onebp.training.split_fingerprint``) that no split under the working directory's
``data/splits`` has — records of another split must not pass for this one — and when a file it
would write is already there with other content, or a run folder holds a run in progress. So the
splits come first (``snakemake ... --until prepare``). Snakemake then judges the restored files by
modification time (no ``.snakemake`` metadata comes with them): they are stamped after the newest
split, trials first, summaries one second later and runs and benchmarks one more, which is the
order their rules run in, so none looks older than what it was made from.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from onebp.atomic import atomic_path
from onebp.errors import UserError

#: a run's or trial's files in copy order: metrics.json, the "finished" marker, last (module docstring)
RUN_FILES = ("config.json", "env.json", "curve.csv", "per_user_test.npz", "metrics.json")
#: a tuning summary's files in copy order: best.json (what the runs read, and how a summary is found) last
SUMMARY_FILES = ("trials.csv", "best.json")
#: what each kind of run record must hold: the outputs of its rule (workflow/rules/train.smk, tune.smk);
#: env.json is written by `onebp train` but not declared, so it is kept when there and checked, not required
REQUIRED = {
    "run": ("config.json", "metrics.json", "curve.csv", "per_user_test.npz"),
    "trial": ("config.json", "metrics.json", "curve.csv"),  # a trial never evaluates the test part: no npz
}
IN_PROGRESS = ("run_state.json", "checkpoint.pt")  # a run folder with these is not ours to complete
#: the order jobs produce these kinds; restored files get increasing times in this order
STAGES = ("trial", "summary", "run", "bench")

README = """# Saved study: {name}

The finished run records of a study, kept between machines (`onebp study save`; docs/scale.md, "A
study longer than a machine"). Paths mirror the working directory's. No checkpoints: only what
finished jobs wrote. Put them back in a fresh working directory after its splits exist:

```
snakemake --cores 2 --configfile <the study's config files> --until prepare
onebp study restore {archive}
snakemake --cores 2 --configfile <the study's config files> --rerun-triggers mtime input   # runs only what is not here
```
"""


@dataclass
class Record:
    """One finished job's files, by path relative to the working directory."""

    kind: str  #: one of STAGES
    folder: Path  #: relative folder (a run or trial directory; results/tuning/<d>/<m>; results/bench)
    files: list[str] = field(default_factory=list)


def _finished_records(workdir: Path) -> tuple[list[Record], list[Path]]:
    """The finished jobs' records under ``workdir/results`` and the unfinished run folders."""
    results = workdir / "results"
    records: list[Record] = []
    unfinished: list[Path] = []
    for parent in (results / "runs", results / "tuning"):
        for config in sorted(parent.rglob("config.json")) if parent.is_dir() else []:
            folder = config.parent
            rel = folder.relative_to(workdir)
            if not (folder / "metrics.json").is_file():
                unfinished.append(rel)
                continue
            kind = "trial" if parent.name == "tuning" else "run"
            # required files are listed even when absent, so that check_record names the missing one
            names = [n for n in RUN_FILES if n in REQUIRED[kind] or (folder / n).is_file()]
            records.append(Record(kind, rel, names))
    tuning = results / "tuning"
    for best in sorted(tuning.rglob("best.json")) if tuning.is_dir() else []:
        records.append(Record("summary", best.parent.relative_to(workdir), list(SUMMARY_FILES)))
    bench = results / "bench"
    for js in sorted(bench.glob("*.json")) if bench.is_dir() else []:
        # the bench rule's two outputs; the JSON (how the record is found) last
        names = [js.with_suffix(".csv").name, js.name]
        records.append(Record("bench", js.parent.relative_to(workdir), names))
    return records, unfinished


def _read_object(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not a readable JSON file ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: not a JSON object")
    return data


def _check_text(path: Path, header: str | None) -> None:
    """A CSV file as its writer leaves it: UTF-8, newline-terminated (a file cut short is not), and
    with ``header`` as its first column when given."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise UserError(f"{path}: not readable ({exc.strerror or type(exc).__name__})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text file") from None
    if not text.endswith("\n"):
        raise UserError(f"{path}: {'empty' if not text else 'cut short (no final newline)'}")
    if header is not None and text.split("\n", 1)[0].split(",", 1)[0] != header:
        raise UserError(f"{path}: no CSV header starting with {header!r}")


def _check_npz(path: Path) -> None:
    """Every array of ``path`` reads back (np.load alone reads only the zip's directory)."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as data:
            for name in data.files:
                data[name]
    except Exception as exc:  # zipfile, zlib, numpy and OS errors alike: the file is damaged
        raise UserError(f"{path}: not a readable .npz file ({type(exc).__name__})") from None


def check_record(root: Path, rec: Record) -> None:
    """Refuse (UserError naming the file) a record with a required file missing or a file that does
    not read back (module docstring)."""
    folder = root / rec.folder
    for name in rec.files:
        path = folder / name
        if not path.is_file():  # a link to a file is read through, as the copy does
            what = "not a file" if path.exists() else "missing"
            raise UserError(f"{path}: {what} (a finished {rec.kind} record holds "
                            f"{', '.join(REQUIRED.get(rec.kind, rec.files))})")
        if name.endswith(".json"):
            _read_object(path)
        elif name.endswith(".npz"):
            _check_npz(path)
        elif name.endswith(".csv"):
            _check_text(path, {"curve.csv": "epoch", "trials.csv": "trial"}.get(name))


def _copy(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def _conflicts(src_root: Path, dst_root: Path, records: list[Record]) -> tuple[list[tuple[Path, Path]], list[str]]:
    """(files to copy, refusals): a file already at the destination with the same bytes is skipped,
    one with other bytes is a refusal."""
    todo: list[tuple[Path, Path]] = []
    refused: list[str] = []
    for rec in records:
        for name in rec.files:
            src, dst = src_root / rec.folder / name, dst_root / rec.folder / name
            if dst.is_symlink() or (dst.exists() and not dst.is_file()):
                refused.append(f"{dst}: not a plain file")
            elif not dst.exists():
                todo.append((src, dst))
            elif not filecmp.cmp(src, dst, shallow=False):
                refused.append(f"{dst}: already there with other content")
    return todo, refused


def save(workdir: Path, archive: Path) -> dict[str, int]:
    """Copy the finished records under ``workdir`` into ``archive``; counts of what was done."""
    if not (workdir / "results").is_dir():
        raise UserError(f"{workdir}: no results/ folder (not a study's working directory)")
    records, unfinished = _finished_records(workdir)
    for rec in records:  # a damaged record is named now, not when another machine restores it
        try:
            check_record(workdir, rec)
        except UserError as exc:
            # a summary or benchmark shares its folder with other records: name its files instead
            files = " and ".join(str(workdir / rec.folder / n) for n in rec.files)
            what = workdir / rec.folder if rec.kind in REQUIRED else files
            raise UserError(f"{exc}; nothing saved: move {what} away (its job then runs again) and save "
                            "again") from None
    if archive.exists() and not archive.is_dir():
        raise UserError(f"{archive}: not a directory")
    todo, refused = _conflicts(workdir, archive, records)
    if refused:
        raise UserError(f"{refused[0]} (the archive holds another run at that path; save to a new archive)"
                        + (f"; {len(refused) - 1} more" if len(refused) > 1 else ""))
    for src, dst in todo:
        _copy(src, dst)
    readme = archive / "README.md"
    if not readme.exists():
        archive.mkdir(parents=True, exist_ok=True)
        with atomic_path(readme) as tmp:
            tmp.write_text(README.format(name=archive.name, archive=archive), encoding="utf-8")
    touched = {dst.parent for _, dst in todo}
    new = sum(archive / rec.folder in touched for rec in records)
    return {"records": len(records), "new_records": new, "files": len(todo), "unfinished": len(unfinished)}


def _split_digests(splits: Path) -> dict[str, Path]:
    """Split fingerprint → split folder, for every prepared split (a folder with meta.json) under ``splits``."""
    from onebp.data.split_format import SplitError
    from onebp.training.split_fingerprint import split_fingerprint

    out: dict[str, Path] = {}
    for meta in sorted(splits.rglob("meta.json")) if splits.is_dir() else []:
        try:
            out[split_fingerprint(meta.parent).digest] = meta.parent
        except SplitError:
            continue  # a folder that is not a whole split matches nothing
    return out


def _archived_records(archive: Path) -> list[Record]:
    if not archive.is_dir():
        raise UserError(f"{archive}: not a directory (an archive written by `onebp study save`)")
    records, _ = _finished_records(archive)
    if not records:
        raise UserError(f"{archive}: holds no saved run, trial or benchmark (results/... with metrics.json)")
    return records


def restore(archive: Path, workdir: Path, splits: Path | None = None) -> dict[str, int]:
    """Put the archive's records back under ``workdir``, stamped newer than its splits (module docstring)."""
    splits = workdir / "data" / "splits" if splits is None else splits
    records = _archived_records(archive)
    digests = _split_digests(splits)
    for rec in records:
        check_record(archive, rec)
        if rec.kind not in ("run", "trial"):
            continue
        config = archive / rec.folder / "config.json"
        recorded = _read_object(config).get("split_fingerprint")
        if not isinstance(recorded, str):
            raise UserError(f"{config}: records no split_fingerprint; it cannot be matched to a split here")
        if recorded not in digests:
            raise UserError(f"{config}: its split ({recorded[:19]}…) is not under {splits}; prepare the "
                            "study's splits first (snakemake ... --until prepare) — a run of another split "
                            "is not restored")
        target = workdir / rec.folder
        busy = [n for n in IN_PROGRESS if (target / n).exists()]
        if busy and not (target / "metrics.json").exists():
            raise UserError(f"{target / busy[0]}: a run in progress or stopped there; let it finish or delete "
                            "the folder before restoring its saved record")
    todo, refused = _conflicts(archive, workdir, records)
    if refused:
        raise UserError(f"{refused[0]} (restore writes only missing files; move it away or restore elsewhere)"
                        + (f"; {len(refused) - 1} more" if len(refused) > 1 else ""))
    newest = max((p.stat().st_mtime for d in digests.values() for p in (d, *d.iterdir())), default=0.0)
    start = max(time.time(), newest) + 1.0
    stage_of = {(archive / rec.folder / n): STAGES.index(rec.kind) for rec in records for n in rec.files}
    for src, dst in todo:
        _copy(src, dst)
        stamp = start + stage_of[src]
        os.utime(dst, (stamp, stamp))
    return {"records": len(records), "files": len(todo)}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("study", help="save a study's finished run records to a folder you can commit; "
                                     "restore them on another machine")
    ssub = p.add_subparsers(dest="study_command", required=True)
    s = ssub.add_parser("save", help="copy the finished runs, trials, tuning summaries and benchmarks "
                                     "(no checkpoints) into ARCHIVE; adds only what is not there yet")
    s.add_argument("archive", help="the archive folder (e.g. studies/ml-1m-claims)")
    s.add_argument("--workdir", default=".", help="the study's working directory (default: .)")
    s.set_defaults(func=cmd_save)
    r = ssub.add_parser("restore", help="copy ARCHIVE's records into the working directory, stamped "
                                        "newer than its splits, so Snakemake skips those jobs")
    r.add_argument("archive", help="a folder written by `onebp study save`")
    r.add_argument("--workdir", default=".", help="the study's working directory (default: .)")
    r.add_argument("--splits", default=None,
                   help="where the prepared splits are (default: WORKDIR/data/splits); every kept run's "
                        "split must be among them")
    r.set_defaults(func=cmd_restore)


def _dir(path: str, what: str) -> Path:
    p = Path(path)
    if not p.is_dir():
        raise UserError(f"{what} {path}: not a directory")
    return p


def cmd_save(args: argparse.Namespace) -> int:
    n = save(_dir(args.workdir, "--workdir"), Path(args.archive))
    print(f"{args.archive}: {n['files']} files of {n['new_records']} newly finished records saved "
          f"({n['records']} finished in {args.workdir}; {n['unfinished']} unfinished left out)", file=sys.stderr)
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    splits = None if args.splits is None else _dir(args.splits, "--splits")
    n = restore(Path(args.archive), _dir(args.workdir, "--workdir"), splits)
    print(f"{args.workdir}: {n['files']} files restored from {args.archive} ({n['records']} records)",
          file=sys.stderr)
    return 0
