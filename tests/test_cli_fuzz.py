"""Every ``onebp`` command, fed bad arguments and malformed files, refuses cleanly.

The commands are enumerated from the CLI's own parser (``onebp.cli.build_parser``), so a new
command or option is fuzzed as soon as it exists: a command without an entry in ``BASELINES`` fails
``test_every_command_has_a_baseline``; a new numeric option gets NaN and non-numbers; a new option
that names a file gets the file faults once it is listed in ``INPUTS``.

Each example starts from a command line that works (``BASELINES``; ``test_baselines_work`` checks
them), changes one argument into a bad one (a number out of range, NaN, ±inf, a fraction for an
integer, not a number; an unknown ``--set`` key or a bad value for a known one; an unknown name; a
missing path, a directory for a file or a file for a directory; an empty, binary, truncated or
wrong-columns file; a damaged file inside a split or run directory) and asserts:

* exit code 2 (``onebp.cli.main`` in process: a ``UserError`` becomes one line and 2, anything
  else propagates — the traceback the user would see);
* stderr is one line naming the argument, key, value or file (argparse's own errors come after its
  usage lines: then the last line is the error);
* nothing is written outside the command's output location (the world directory is snapshotted
  before and after, output excluded).

Defects found in other people's files are recorded in ``KNOWN`` with the failing input; the property
skips them and ``test_known_defects`` runs each as ``xfail(strict=True)``, so a fix shows up as an
XPASS to remove. Examples are derandomized (the same inputs each run, so CI is stable);
``ONEBP_FUZZ_EXAMPLES=N`` runs N random examples per command instead, ``ONEBP_FUZZ_ALL=1`` every
fault once, and ``ONEBP_FUZZ_COUNTS=FILE`` writes how many inputs each command got, by fault
(the numbers in docs/reliability.md).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import itertools
import json
import math
import os
import re
import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onebp.cli import build_parser
from onebp.cli import main as cli_main

REPO = Path(__file__).resolve().parent.parent
RANDOM_EXAMPLES = int(os.environ.get("ONEBP_FUZZ_EXAMPLES", "0"))
EVERY_CASE = os.environ.get("ONEBP_FUZZ_ALL") == "1"
EXAMPLES = RANDOM_EXAMPLES or 10
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not RANDOM_EXAMPLES, database=None,
                suppress_health_check=list(HealthCheck))
NAN, INF = "nan", "inf"
TINY = ["epochs=2", "dim=4", "batch_size=256", "threads=1"]


# -- the commands ------------------------------------------------------------------------------------
def leaf_commands() -> dict[str, argparse.ArgumentParser]:
    """Every runnable command of the parser, by its words (``report compare``)."""
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, words: list[str]) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            found[" ".join(words)] = parser
            return
        for name, sub in subs[0].choices.items():
            walk(sub, [*words, name])

    walk(build_parser(), [])
    return found


@dataclass
class World:
    """Inputs that work, made once: a split, finished runs and trials, the shipped smoke results."""

    root: Path
    split: Path = field(init=False)

    def __post_init__(self) -> None:
        self.split = self.root / "split"


@dataclass
class Baseline:
    """A working command line: ``pos`` positionals, ``opts`` options (flag → value, or a list of
    values for a repeatable one, or True for a switch); what it writes goes under the ``out`` folder
    it is built with."""

    pos: list[str]
    opts: dict[str, object]


def _baselines(w: World, out: Path) -> dict[str, Baseline]:
    r, s = w.root, str(w.split)
    return {
        "train": Baseline([], {"--data": s, "--method": "onebp", "--set": TINY, "--out": str(out / "run")}),
        "bench": Baseline([], {"--data": s, "--method": "onebp", "--set": TINY, "--epochs": "1", "--evals": "1",
                               "--warmup": "0"}),
        "methods": Baseline([], {}),
        "bench-suite": Baseline([], {"--data": s, "--methods": "onebp", "--repeats": "1", "--epochs": "1",
                                     "--evals": "1", "--warmup": "0", "--set": TINY, "--out": str(out / "bench")}),
        "tune plan": Baseline([], {"--method": "onebp", "--dataset": "tiny", "--n-trials": "2"}),
        "tune summarize": Baseline([str(r / "trial0")], {"--method": "onebp", "--dataset": "split", "--keys": "lr",
                                                         "--out-dir": str(out / "tuning")}),
        "data synth": Baseline([], {"--out": str(out / "synth"), "--n-users": "30", "--n-items": "20",
                                    "--mean-degree": "6", "--min-degree": "2"}),
        "data download": Baseline([], {"--dataset": "mine", "--url": "http://127.0.0.1:9/u.data",
                                       "--format": "u.data", "--raw-dir": str(r / "raw"), "--offline": True,
                                       "--allow-unverified": True}),
        "data prepare": Baseline([], {"--dataset": "mine", "--url": "http://127.0.0.1:9/u.data",
                                      "--format": "u.data", "--raw-dir": str(r / "raw"), "--offline": True,
                                      "--allow-unverified": True, "--out": str(out / "prep")}),
        "data import": Baseline([], {"--format": "onebp-csv", "--train": str(r / "tr.csv"),
                                     "--test": str(r / "te.csv"), "--out": str(out / "imp")}),
        "data stats": Baseline([], {"--root": str(r / "splits")}),
        "report collect": Baseline([str(r / "run")], {"--out": str(out / "results.csv"),
                                                      "--runs-out": str(out / "runs.csv")}),
        "report tables": Baseline([], {"--results": "results/results.csv", "--out-dir": str(out / "tables")}),
        "report figures": Baseline([], {"--results": "results/results.csv", "--runs": "results/runs.csv",
                                        "--out-dir": str(out / "figures")}),
        "report tuning": Baseline([str(r / "tuning" / "best.json")], {"--out": str(out / "tuning")}),
        "report claims": Baseline([], {"--results": "results/results.csv", "--out": str(out / "REPORT.md")}),
        "report compare": Baseline(["results/results.csv", "results/results.csv"], {}),
        "report reference": Baseline([], {"--workdir": str(r), "--out": str(out / "reference"),
                                          "--command": "make", "--wall": "1 s", "--no-figures": True}),
        "report summary": Baseline([], {"--tables": ["results/tables/main.md"], "--out": str(out / "summary.md")}),
        "gpu-run": Baseline(["--", "true"], {"--slots-dir": str(out / "slots")}),
        "status": Baseline([str(r / "runs-for-status")], {}),
        "study save": Baseline([str(out / "archive")], {"--workdir": str(r)}),
        "study restore": Baseline([str(r / "archive")], {"--workdir": str(out), "--splits": str(r / "splits")}),
        "estimate": Baseline([], {"--workflow-dir": str(REPO), "--configfile": [str(REPO / "config" / "smoke.yaml")],
                                  "--data": [f"tiny={s}"], "--device": "cpu", "--epochs": "1", "--warmup": "0",
                                  "--json": True, "--cache": str(out / "timings.json")}),
    }


def argv_of(command: str, b: Baseline) -> list[str]:
    argv = command.split()
    for flag, value in b.opts.items():
        if value is True:
            argv.append(flag)
        elif isinstance(value, list):
            for v in value:
                argv += [flag, str(v)]
        else:
            argv += [flag, str(value)]
    rest = [p for p in b.pos if p != "--"]
    return argv + (["--", *rest] if "--" in b.pos else rest)


# -- what each argument may be fed -------------------------------------------------------------------
#: numeric options whose valid range is known: (least, greatest, whether the ends are allowed)
RANGES: dict[str, tuple[float, float, bool]] = {
    "--epochs": (1, math.inf, True), "--evals": (1, math.inf, True), "--warmup": (0, math.inf, True),
    "--repeats": (1, math.inf, True), "--gpus": (1, math.inf, True), "--max-negatives": (1, math.inf, True),
    "--n-trials": (1, math.inf, True), "--retries": (0, math.inf, True), "--backoff": (0, math.inf, True),
    "--jobs-per-device": (1, math.inf, True), "--timeout": (0, math.inf, True),
    "--n-users": (1, math.inf, True), "--n-items": (1, math.inf, True),
    "--min-degree": (1, math.inf, True), "--mean-degree": (1, math.inf, True),
    "--test-ratio": (0, 1, False), "--valid-ratio": (0, 1, True), "--alpha": (0, 1, False),
    "--k-sigma": (0, math.inf, True), "--k-seed": (0, math.inf, True), "--tol": (0, math.inf, True),
    "--floor": (0, math.inf, True), "--kcore-user": (0, math.inf, True), "--kcore-item": (0, math.inf, True),
}
#: options that name something (a method, dataset, format, ...): a made-up name must be refused
NAMES: dict[str, set[str]] = {
    "--method": {"train", "bench", "tune plan", "tune summarize"},
    "--methods": {"bench-suite"},
    "--format": {"data import", "data download", "data prepare"},
    "--sampler": {"tune plan"},
    "--device": {"estimate"},
    "--datasets": {"estimate"},
    "--splits": {"report compare"},
    "--protocol": {"report tables", "report figures"},
    "--metric": {"report figures"},
}
#: options that take a small language (JSON, a list of keys): malformed text
TEXTS: dict[tuple[str, str], list[str]] = {
    ("tune summarize", "--budget"): ["{bad", "[1, 2]", "nan"],
    ("tune summarize", "--keys"): ["no_such_key", ","],
    ("report tables", "--ks"): ["0", "-5", "a,b"],
    ("report tables", "--metrics"): ["no_such_metric"],
    ("report claims", "--metrics"): ["no_such_metric@20", "ndcg@0"],
}
#: where a path must not lead outside the output location: unsafe names
UNSAFE_NAMES: dict[str, set[str]] = {"--dataset": {"data download", "data prepare"}}
#: input paths: (command, flag or positional index) → what it should be (the faults follow from it)
INPUTS: dict[tuple[str, str], str] = {
    ("train", "--data"): "split", ("bench", "--data"): "split", ("bench-suite", "--data"): "split",
    ("train", "--params-file"): "json", ("bench", "--params-file"): "json",
    ("tune summarize", "0"): "run",
    ("data import", "--train"): "csv", ("data import", "--test"): "csv",
    ("data download", "--dataset-file"): "json", ("data prepare", "--dataset-file"): "json",
    ("data stats", "--root"): "dir",
    ("report collect", "0"): "run", ("report collect", "--root"): "dir",
    ("report tables", "--results"): "csv", ("report figures", "--results"): "csv",
    ("report figures", "--runs"): "csv", ("report claims", "--results"): "csv",
    ("report claims", "--bench"): "json", ("report tables", "--bench"): "json",
    ("report tuning", "0"): "json", ("report compare", "0"): "csv", ("report compare", "1"): "csv",
    ("report summary", "--tables"): "text", ("report reference", "--workdir"): "dir",
    ("status", "0"): "dir", ("gpu-run", "--slots-dir"): "slots", ("methods", "--baselines"): "dir",
    ("estimate", "--configfile"): "yaml", ("estimate", "--config-json"): "json", ("estimate", "--cache"): "cache",
    ("estimate", "--data"): "split", ("data download", "--raw-dir"): "dir", ("data prepare", "--raw-dir"): "raw",
    ("study save", "--workdir"): "dir", ("study restore", "0"): "dir", ("study restore", "--workdir"): "dir",
    ("study restore", "--splits"): "dir",
}
#: the valid file each input kind is truncated or re-headed from (relative to the world)
SOURCES = {"csv": "results/results.csv", "json": "tuning/best.json", "cache": "tuning/best.json", "yaml": "smoke.yaml",
           "text": "results/tables/main.md"}
SOURCE_OF = {("data import", "--train"): "tr.csv", ("data import", "--test"): "te.csv",
             ("report figures", "--runs"): "results/runs.csv"}
#: prefix of a value (``--data DATASET=DIR``, ``--params-file METHOD=FILE``)
VALUE_PREFIX = {("estimate", "--data"): "tiny=", ("bench-suite", "--params-file"): "onebp="}
SET_FAULTS = ["zzz_no_such_key=1", "epochs=nan", "epochs=-1", "lr=nan", "lr=-0.1", "dim=12.5", "dim=abc",
              "temperature=inf", "n_negatives=-3", "select_metric=ndcg@020", "device=cuda:x", "seed=", "=3",
              "epochs"]
NUMBER_WORDS = ["abc", "", "1e", "0x1f", "--"]


def number_faults(flag: str, is_int: bool) -> list[tuple[str, str]]:
    """(value, kind) for a numeric option: never a number, and outside its range where known."""
    out = [(NAN, "NaN"), ("-nan", "NaN")] + [(w, "not a number") for w in NUMBER_WORDS]
    if is_int:
        out += [("1.5", "fraction for an integer"), ("1e3", "float notation for an integer")]
    lo, hi, ends = RANGES.get(flag, (-math.inf, math.inf, True))
    if math.isfinite(lo):
        out += [(_num(lo - 1, is_int), "below range"), ("-inf", "-inf")]
        if not ends:
            out.append((_num(lo, is_int), "at an excluded end"))
    if math.isfinite(hi):
        out += [(_num(hi + 1, is_int), "above range"), (INF, "inf")]
        if not ends:
            out.append((_num(hi, is_int), "at an excluded end"))
    elif flag in RANGES and flag != "--timeout":  # a count or factor: infinity is not one
        out.append((INF, "inf"))
    return out


def _num(x: float, is_int: bool) -> str:
    return str(int(x)) if is_int else repr(float(x))


def faults_of(command: str, parser: argparse.ArgumentParser) -> list[tuple[str, str, str]]:
    """(where, kind, value-or-fault-file-kind) for one command, from its parser's actions."""
    out: list[tuple[str, str, str]] = []
    for a in parser._actions:
        flag = a.option_strings[-1] if a.option_strings else None
        if flag in ("--help", "-h"):
            continue
        if flag is not None and a.type in (int, float):
            out += [(flag, kind, v) for v, kind in number_faults(flag, a.type is int)]
        if flag in ("--set", "--method-set"):
            prefix = "onebp:" if flag == "--method-set" else ""
            out += [(flag, "bad --set", prefix + v) for v in SET_FAULTS]
        if flag in NAMES and command in NAMES[flag]:
            listed = flag.endswith("s") and flag != "--splits"  # --methods a,b: a trailing comma is harmless
            out += [(flag, "unknown name", v) for v in ("no-such-name", "ONEBP", " ", *(() if listed else ("onebp,",)))]
        if flag in UNSAFE_NAMES and command in UNSAFE_NAMES[flag]:
            out += [(flag, "unsafe name", v) for v in ("../../escape", "..", "a/b", "/abs")]
    for (cmd, where), values in TEXTS.items():
        if cmd == command:
            out += [(where, "malformed text", v) for v in values]
    for (cmd, where), kind in INPUTS.items():
        if cmd == command:
            out += [(where, f"{kind}: {fault}", fault) for fault in FILE_FAULTS[kind]]
    return out


FILE_FAULTS: dict[str, list[str]] = {
    "csv": ["missing", "directory", "empty", "binary", "truncated", "wrong columns", "header only"],
    "json": ["missing", "directory", "empty", "binary", "truncated", "wrong type"],
    "cache": ["directory", "empty", "binary", "truncated", "wrong type"],  # missing: it is created
    "yaml": ["missing", "directory", "binary", "truncated yaml", "wrong type"],
    "text": ["missing", "directory", "binary"],
    "split": ["missing", "file", "empty dir", "split: empty train", "split: binary train", "split: truncated train",
              "split: wrong columns", "split: bad meta"],
    "run": ["missing", "file", "empty dir", "run: empty config", "run: binary metrics", "run: list config"],
    "dir": ["missing", "file"],
    "raw": ["missing", "file", "raw: empty data", "raw: binary data"],
    "slots": ["file", "symlink", "world-writable"],
}


def make_fault(fault: str, kind: str, world: World, bad: Path, source: str | None = None) -> Path:
    """Create the malformed input ``fault`` for an input of ``kind`` under ``bad`` (truncated or
    re-headed from ``source``, else the kind's usual file); return its path."""
    name = {"csv": "bad.csv", "json": "bad.json", "cache": "bad.json", "yaml": "bad.yaml", "text": "bad.md"}.get(
        kind, "bad")
    p = bad / name
    src = world.root / (source or SOURCES.get(kind, ""))
    if fault == "missing":
        return p
    if fault in ("directory", "empty dir"):
        p.mkdir()
        return p
    if fault == "file":
        p.write_text("a file, not a directory\n")
        return p
    if fault == "empty":
        p.write_bytes(b"")
    elif fault == "binary":
        p.write_bytes(b"\xff\xfe\x00\x9c" + bytes(range(256)))
    elif fault == "truncated":
        text = src.read_text()
        cut = text.index(",", text.index("\n", len(text) // 2) + 1) + 1 if kind == "csv" else len(text) // 2
        p.write_text(text[:cut])  # csv: the row ends right after a delimiter (fields lost)
    elif fault == "truncated yaml":
        p.write_text("datasets: [tiny, ml\nseeds: {0: ")
    elif fault == "wrong columns":
        rows = src.read_text().splitlines()
        p.write_text("\n".join(["a,b,c", *(",".join(r.split(",")[:3]) for r in rows[1:])]) + "\n")
    elif fault == "header only":
        p.write_text(src.read_text().splitlines()[0] + "\n")
    elif fault == "wrong type":
        p.write_text("- a\n- b\n" if kind == "yaml" else "[1, 2, 3]\n")
    elif fault.startswith("split:"):
        shutil.copytree(world.split, p)
        target = p / ("meta.json" if "meta" in fault else "train.tsv")
        text = target.read_text()
        if fault == "split: truncated train":  # the last row ends right after its tab
            target.write_text(text[: text.index("\t", len(text) // 2) + 1])
        else:
            target.write_bytes({"split: empty train": b"", "split: binary train": b"\xff\x00\xfe" * 9,
                                "split: wrong columns": b"a\tb\tc\n1\t2\t3\n",
                                "split: bad meta": b"{\"n_users\": "}[fault])
    elif fault.startswith("run:"):
        shutil.copytree(world.root / "trial0", p)
        if fault == "run: empty config":
            (p / "config.json").write_bytes(b"")
        elif fault == "run: list config":
            (p / "config.json").write_text("[]")
        else:
            (p / "metrics.json").write_bytes(b"\xff\xfe garbage")
    elif fault.startswith("raw:"):
        (p / "mine").mkdir(parents=True)
        (p / "mine" / "u.data").write_bytes(b"" if "empty" in fault else b"\xff\xfe\x00" * 20)
    elif fault == "symlink":
        (bad / "real").mkdir(mode=0o700)
        p.symlink_to(bad / "real")
    elif fault == "world-writable":
        p.mkdir()
        p.chmod(0o777)
    else:
        raise AssertionError(fault)
    return p


# -- running a command and the oracle ---------------------------------------------------------------
class _Exec(Exception):
    """gpu-run reached exec: the command would have run (accepted)."""


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``onebp ARGV`` in this process: (exit code, stdout, stderr); an exception other than
    SystemExit is what the user would see as a traceback (marked ``Traceback`` in stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli_main(argv)
        except SystemExit as exc:  # argparse's refusal
            code = exc.code if isinstance(exc.code, int) else 1
        except _Exec:
            code = 0
        except Exception as exc:  # noqa: BLE001 - this is the defect being looked for
            code = None
            print(f"Traceback (in process): {type(exc).__name__}: {exc}", file=err)
    return (-1 if code is None else code), out.getvalue(), err.getvalue()


def error_lines(stderr: str) -> list[str]:
    """The error lines of stderr: argparse's usage block (``usage: ...`` and its continuation lines)
    is argparse's convention and is dropped; what remains must be a single line."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    if lines and lines[0].startswith("usage:"):
        return lines[-1:] if re.match(r"^onebp.*: error: ", lines[-1]) else lines
    return lines


def snapshot(root: Path, skip: Path) -> dict[str, tuple]:
    """Every path under ``root`` but ``skip``: kind, mode and content hash (files) or target (links)."""
    state: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        if d == skip:
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            p = d / name
            if p == skip:
                continue
            st = p.lstat()
            if p.is_symlink():
                state[str(p)] = ("link", os.readlink(p))
            elif p.is_dir():
                state[str(p)] = ("dir", st.st_mode)
            else:
                state[str(p)] = ("file", st.st_mode, hashlib.sha1(p.read_bytes()).hexdigest())
    return state


COUNTS: dict[str, Counter] = defaultdict(Counter)


@dataclass(frozen=True)
class Case:
    command: str
    where: str
    kind: str
    value: str


def build_case(world: World, command: str, case: Case, scratch: Path) -> tuple[list[str], list[str]]:
    """The argv with one argument made bad, and the strings its error line may name."""
    out, bad = scratch / "out", scratch / "bad"
    out.mkdir(parents=True)
    bad.mkdir()
    b = _baselines(world, out)[command]
    pos = [p for p in b.pos if p != "--"]
    names = [case.value] if case.value.strip() else []
    value = case.value
    kind = case.kind.split(":")[0]
    if ":" in case.kind and kind in FILE_FAULTS:  # a file fault: the value names the fault
        path = make_fault(case.value, kind, world, bad, SOURCE_OF.get((command, case.where)))
        value = VALUE_PREFIX.get((command, case.where), "") + str(path)
        names = [str(path), path.name]
        if path.is_dir():  # a damaged file inside a split, run or raw directory may be named itself
            names += [f.name for f in path.rglob("*") if f.is_file()]
    if case.where.isdigit():
        i = int(case.where)
        pos = pos[:i] + [value] + pos[i + 1:]
    elif case.where in ("--set", "--method-set"):
        assignment = case.value.removeprefix("onebp:")
        key = assignment.split("=")[0]
        names = [key] if key else [assignment]
        b.opts[case.where] = [*(b.opts.get(case.where) or []), value]  # type: ignore[list-item]
    else:
        b.opts[case.where] = [value] if isinstance(b.opts.get(case.where), list) else value
        names += [case.where, case.where.lstrip("-")]  # "--method" or "method ' '"
    b.pos = (["--", *pos] if "--" in b.pos else pos)
    return argv_of(command, b), names


def check(world: World, command: str, case: Case, scratch: Path) -> None:
    argv, names = build_case(world, command, case, scratch)
    before = snapshot(world.root, scratch / "out")
    code, _, err = run_cli(argv)
    after = snapshot(world.root, scratch / "out")
    COUNTS[command][case.kind] += 1
    lines = error_lines(err)
    where = f"onebp {' '.join(argv)}"
    assert "Traceback" not in err, f"{where}\n{err[-1500:]}"
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"{where}: wrote outside its output: {changed[:5]}"
    expected, _ = ACCEPTED.get((command, case.where, case.value), (2, ""))
    assert code == expected, f"{where}: exit {code}, stderr {err[-600:]!r}"
    if expected != 2:  # a check that ran and failed: its verdict is on stdout
        return
    assert len(lines) == 1, f"{where}: {len(lines)} error lines: {lines[:6]}"
    assert any(n in lines[0] for n in names if n), f"{where}: the error names none of {names}: {lines[0]!r}"


# -- defects found in files this test's author does not own (re-checked: strict xfail) ----------------
#: (command, where) → (the failing values, the defect). Each listed case is skipped by the property
#: and run by test_known_defects as xfail(strict=True): when its owner fixes it, it XPASSes (fails) and
#: the entry must go. A file fault's value is the fault's name ("binary", "truncated", ...).
KNOWN: dict[tuple[str, str], tuple[tuple[str, ...], str]] = {
}
#: inputs whose right answer is another exit code than 2: (command, where, value) → (code, why)
ACCEPTED: dict[tuple[str, str, str], tuple[int, str]] = {
    ("report compare", "0", "header only"): (1, "a rerun with no rows fails the check (nothing compared)"),
    ("report compare", "0", "truncated"): (1, "a rerun missing rows fails the check (cells missing in the rerun)"),
}


def known(case: Case) -> str | None:
    values, reason = KNOWN.get((case.command, case.where), ((), ""))
    return reason if case.value in values else None


def cases_of(command: str) -> list[Case]:
    return [Case(command, where, kind, value) for where, kind, value in faults_of(command, leaf_commands()[command])]


# -- fixtures and tests -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    """Built once with the commands themselves (about 10 s); every example reads it, none may change it."""
    import numpy as np

    w = World(tmp_path_factory.mktemp("fuzz-world"))
    r = w.root
    shutil.copyfile(REPO / "config" / "smoke.yaml", r / "smoke.yaml")
    tiny = sum((["--set", s] for s in TINY), [])
    steps = [["data", "synth", "--out", str(w.split), "--n-users", "60", "--n-items", "40", "--mean-degree", "8",
              "--min-degree", "3"],
             ["train", "--data", str(w.split), "--method", "onebp", *tiny, "--out", str(r / "run")],
             ["train", "--data", str(w.split), "--method", "onebp", *tiny, "--set", "tuning_trial=true",
              "--out", str(r / "trial0")],
             ["tune", "summarize", str(r / "trial0"), "--method", "onebp", "--dataset", "split", "--keys", "lr",
              "--out-dir", str(r / "tuning")]]
    # a finished study in results/ (two methods, two seeds): what tables, figures, claims, compare read
    steps += [["train", "--data", str(w.split), "--method", m, *tiny, "--set", f"seed={seed}",
               "--out", f"results/runs/tiny/{m}/main/clean/seed{seed}"] for m in ("onebp", "twobp") for seed in (0, 1)]
    steps += [["report", "collect", "--root", "results/runs", "--out", "results/results.csv",
               "--runs-out", "results/runs.csv"],
              ["report", "tables", "--results", "results/results.csv", "--out-dir", "results/tables"],
              ["study", "save", "archive"]]  # the finished study above, as `study restore` reads it
    cwd = Path.cwd()
    os.chdir(r)
    try:
        for argv in steps:
            code, _, err = run_cli(argv)
            assert code == 0, (argv, err[-1000:])
    finally:
        os.chdir(cwd)
    (r / "splits").mkdir()
    shutil.copytree(w.split, r / "splits" / "tiny")
    (r / "runs-for-status").mkdir()
    shutil.copytree(r / "run", r / "runs-for-status" / "run")
    rng = np.random.default_rng(0)
    rows = sorted({(int(u), int(i)) for u, i in rng.integers(1, [40, 30], size=(600, 2))})
    (r / "raw" / "mine").mkdir(parents=True)
    (r / "raw" / "mine" / "u.data").write_text("".join(f"{u}\t{i}\t4\t{n}\n" for n, (u, i) in enumerate(rows)))
    test = set(rows[::5])
    (r / "tr.csv").write_text("user,item,rating\n" + "".join(f"{u},{i},4\n" for u, i in rows if (u, i) not in test))
    (r / "te.csv").write_text("user,item,rating\n" + "".join(f"{u},{i},4\n" for u, i in sorted(test)))
    return w


@pytest.fixture()
def in_world(world: World, monkeypatch) -> World:
    # Relative paths (results/…) resolve in the world; gpu-run never replaces this process; no GPU.
    monkeypatch.chdir(world.root)
    monkeypatch.setenv("ONEBP_GPUS", "0")  # gpu-run locks a (pretend) device in its --slots-dir
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)

    def no_exec(*args: object) -> None:
        raise _Exec

    monkeypatch.setattr(os, "execvpe", no_exec)
    return world


_SERIAL = itertools.count()


def _scratch(world: World) -> Path:
    return world.root / "scratch" / f"{next(_SERIAL):05d}"


def test_every_command_has_a_baseline(world: World) -> None:
    missing = sorted(set(leaf_commands()) - set(_baselines(world, world.root)))
    assert not missing, f"add a working command line for {missing} to BASELINES (tests/test_cli_fuzz.py)"


@pytest.mark.parametrize("command", sorted(leaf_commands()))
def test_baselines_work(command: str, in_world: World) -> None:
    """The starting points work: a refusal in the property is then caused by the one bad argument."""
    scratch = _scratch(in_world)
    (scratch / "out").mkdir(parents=True)
    argv = argv_of(command, _baselines(in_world, scratch / "out")[command])
    code, _, err = run_cli(argv)
    assert code == 0, f"onebp {' '.join(argv)}: {err[-800:]}"
    shutil.rmtree(scratch)


@pytest.mark.parametrize("command", sorted(leaf_commands()))
def test_bad_input_is_refused_in_one_line(command: str, in_world: World) -> None:
    cases = [c for c in cases_of(command) if known(c) is None]
    if not cases:
        pytest.skip(f"{command}: no argument to fuzz")

    def one(case: Case) -> None:
        scratch = _scratch(in_world)
        try:
            check(in_world, command, case, scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    if EVERY_CASE:  # every fault once, in order: the numbers in docs/reliability.md
        failed = []
        for case in cases:
            try:
                one(case)
            except AssertionError as exc:
                failed.append(f"{case}: {str(exc)[:300]}")
        assert not failed, "\n".join(failed)
    else:
        FUZZ(given(st.sampled_from(cases))(one))()
    path = os.environ.get("ONEBP_FUZZ_COUNTS")
    if path:
        old = json.loads(Path(path).read_text()) if Path(path).exists() else {}
        old[command] = dict(COUNTS[command])
        Path(path).write_text(json.dumps(old, indent=1, sort_keys=True))


@pytest.mark.parametrize("case", [pytest.param(c, id=f"{c.command}|{c.where}|{c.value}",
                                               marks=pytest.mark.xfail(strict=True, reason=known(c)))
                                  for command in sorted(leaf_commands()) for c in cases_of(command)
                                  if known(c) is not None])
def test_known_defects(case: Case, in_world: World) -> None:
    scratch = _scratch(in_world)
    try:
        check(in_world, case.command, case, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def test_enumeration_covers_nested_commands() -> None:
    commands = leaf_commands()
    assert {"train", "report compare", "data import", "tune summarize", "gpu-run", "status", "estimate"} <= set(commands)



def test_in_process_matches_a_real_process(world: World, tmp_path: Path) -> None:
    """The property runs ``onebp.cli.main`` in this process; the ``onebp`` script is that function, so a
    real process gives the same exit code and error line (checked on two faults)."""
    import subprocess
    import sys

    for argv in (["train", "--data", str(tmp_path / "missing"), "--method", "onebp", "--out", str(tmp_path / "r")],
                 ["bench", "--data", str(world.split), "--method", "onebp", "--epochs", "nan"]):
        code, _, err = run_cli(argv)
        proc = subprocess.run([sys.executable, "-m", "onebp", *argv], capture_output=True, text=True, timeout=120)
        assert (proc.returncode, error_lines(proc.stderr)) == (code, error_lines(err)) and code == 2
    assert not (tmp_path / "r").exists()
