"""The docs in docs/ restate facts whose home is the code; these tests keep the two equal.

Each checked table in a doc follows a marker comment ``<!-- name: ... -->``. Also: every relative
link in the Markdown files resolves, and nothing points outside the repository.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import os
import re
from pathlib import Path

import pytest

from onebp.data.catalog import CATALOG
from onebp.methods.onebp import PAPER_DEFAULTS

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"


def table_after(doc: Path, marker: str) -> list[dict[str, str]]:
    """The Markdown table right after ``<!-- marker: ... -->`` as a list of {header: cell}."""
    lines = doc.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"<!-- {marker}:"))
    rows = []
    for line in lines[start + 1:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    header, _rule, *body = rows
    return [dict(zip(header, r, strict=True)) for r in body]


def _number(cell: str) -> float | None:
    return float(cell) if cell else None


def test_method_hyper_parameter_table_is_paper_defaults() -> None:
    rows = table_after(DOCS / "method.md", "paper-hyper-parameters")
    assert [r["dataset"] for r in rows] == ["ml-100k", "ml-1m", "gowalla", "yelp2018"]
    for r in rows:
        assert PAPER_DEFAULTS[r["dataset"]] == {
            "l2": float(r["l2"]), "lr": float(r["lr"]), "dim": int(r["dim"]), "beta": float(r["β"]),
            "epochs": int(r["epochs"]),
        }, r


def test_method_reference_curve_is_compare_officials() -> None:
    spec = importlib.util.spec_from_file_location("compare_official", REPO / "benchmarks" / "compare_official.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = table_after(DOCS / "method.md", "official-curve")
    cols = ("Recall@10", "NDCG@10", "Recall@20", "NDCG@20")
    curve = {int(r["epoch"]): tuple(float(r[c]) for c in cols) for r in rows if r["epoch"].isdigit()}
    assert curve == module.OFFICIAL
    best = next(r for r in rows if r["epoch"].startswith("best"))
    assert {"recall@20": float(best["Recall@20"]), "ndcg@20": float(best["NDCG@20"])} == module.OFFICIAL_BEST


def test_data_files_table_is_the_catalog() -> None:
    expected = []
    for ds in CATALOG.values():
        for inp in ds.inputs:
            f = inp.file
            check = f"sha256 {f.sha256}" if f.sha256 else f"git blob {f.git_blob}" if f.git_blob else ""
            expected.append((ds.name, f.filename, f.url, f.size, check))
            if f.member:
                m = f.member
                expected.append((ds.name, f"{m.path} (zip member)", "", m.size,
                                 f"sha256 {m.sha256}" if m.sha256 else ""))
    rows = table_after(DOCS / "data.md", "catalog-files")
    got = [(r["dataset"], r["file"], r["URL"], int(r["size (bytes)"]) if r["size (bytes)"] else None, r["checksum"])
           for r in rows]
    assert got == expected


def test_data_statistics_table_is_the_catalog() -> None:
    rows = table_after(DOCS / "data.md", "catalog-statistics")
    got = {r["dataset"]: tuple(_number(r[c]) for c in ("users", "items", "interactions", "train", "test"))
           for r in rows}
    expected = {name: (e.n_users, e.n_items, e.n_interactions, e.n_train, e.n_test)
                for name, e in ((ds.name, ds.expected) for ds in CATALOG.values())}
    assert got == expected


def tree_entries(doc: Path, root: str) -> set[str]:
    """The paths the file tree in ``doc`` lists under ``root`` (``onebp/``): ``model/encoders.py``, …"""
    lines = doc.read_text().split("```")[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(root))
    entries, folders = set(), []
    for line in lines[start + 1:]:
        if line and not line.startswith(" "):
            break  # the next top-level entry
        name = line.split()[0] if line.strip() else ""
        if not (name.endswith(".py") or name.endswith("/")):
            continue  # a description's continuation line
        depth = (len(line) - len(line.lstrip())) // 2 - 1
        folders = folders[:depth]
        if name.endswith("/"):
            folders.append(name)
        else:
            entries.add("".join(folders) + name)
    return entries


def test_the_architecture_tree_lists_every_module_of_the_package() -> None:
    # docs/architecture.md is the one home of the file tree: it must not drift from the package
    package = REPO / "onebp"
    modules = {str(p.relative_to(package)) for p in package.rglob("*.py")
               if p.name not in ("__init__.py", "__main__.py")}
    assert tree_entries(DOCS / "architecture.md", "onebp/") == modules


SKIP = {".git", ".venv", ".snakemake", ".pytest_cache", "__pycache__"}  # not ours, at any depth
#: top-level folders a workflow fills (downloads, runs): only their committed parts below are read
GENERATED = {"data", "results"}
COMMITTED_UNDER_GENERATED = [Path("results") / "README.md", Path("results") / "reference"]


SOURCE_PATTERNS = ("*.py", "*.md", "*.yaml", "*.smk", "*.rst", "Snakefile", "*.toml", "*.sh", "run")


def _repo_files(*patterns: str) -> list[Path]:
    """Source and documentation files of the repository (no git needed: CI may test an export)."""
    out = []
    for root, dirs, files in os.walk(REPO):
        top = Path(root) == REPO
        dirs[:] = [d for d in dirs if d not in SKIP and not d.endswith(".egg-info")
                   and not (top and d in GENERATED)]
        out += [Path(root) / f for f in files if any(fnmatch.fnmatch(f, p) for p in patterns)]
    for part in COMMITTED_UNDER_GENERATED:  # the shipped references and the results folder's README
        where = REPO / part
        if where.is_file():
            out.append(where)
        for root, dirs, files in os.walk(where):
            dirs[:] = [d for d in dirs if d not in SKIP]
            out += [Path(root) / f for f in files if any(fnmatch.fnmatch(f, p) for p in patterns)]
    return sorted(set(out))


def test_the_file_scan_reaches_nested_data_folders_scripts_and_references() -> None:
    """The scan prunes only the top-level data/ and results/ (a workflow's downloads and runs): a
    package or test folder named data, shell scripts, CI and the shipped references are read."""
    scanned = {str(p.relative_to(REPO)) for p in _repo_files(*SOURCE_PATTERNS)}
    for expected in ("onebp/data/catalog.py", "tests/data/__init__.py", "benchmarks/gpu_check.sh", ".ci/run",
                     "results/README.md", "results/reference/ROBUSTNESS.md"):
        assert expected in scanned, expected
    assert not any(s.startswith(("data/", ".venv/")) for s in scanned)


def _markdown_files() -> list[Path]:
    return _repo_files("*.md")


@pytest.mark.parametrize("doc", _markdown_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(doc: Path) -> None:
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (doc.parent / target.split("#", 1)[0]).resolve()
        if not path.exists():
            broken.append(target)
        elif not path.is_relative_to(REPO):
            broken.append(f"{target} (outside the repository)")
    assert not broken, f"{doc.relative_to(REPO)}: broken links {broken}"


def test_nothing_cites_files_outside_the_repository() -> None:
    """The design notes and checksum lists of the team's shared folder are not part of the
    repository; what a reader needs from them lives in docs/."""
    pattern = re.compile(r"DESIGN\.md|SHA256SUMS|\.\./shared")
    files = _repo_files(*SOURCE_PATTERNS)
    hits = [f"{p.relative_to(REPO)}:{n}" for p in files if p.name != "test_docs.py"
            for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1) if pattern.search(line)]
    assert not hits, hits


def _decimals(text: str) -> list[str]:
    """Every decimal number written in ``text`` (sign and leading × dropped), as written."""
    return re.findall(r"(?<![\w.])\d+\.\d+", text)


def test_readme_reading_of_the_headline_quotes_the_matrix() -> None:
    """The README's "Read it as" paragraph is typed by hand: every decimal it quotes (effects, ratios,
    intervals) must be a value of results/reference/ROBUSTNESS.md rounded to the digits shown."""
    readme = (REPO / "README.md").read_text()
    para = readme[readme.index("**Read it as:**"):readme.index("\n## ", readme.index("**Read it as:**"))]
    matrix = {float(v) for v in _decimals((REPO / "results" / "reference" / "ROBUSTNESS.md").read_text())}
    quoted = _decimals(para)
    assert len(quoted) >= 5  # the paragraph quotes effects; a rewrite without any must revisit this test
    missing = [q for q in quoted
               if not any(round(v, len(q.split(".")[1])) == float(q) for v in matrix)]
    assert not missing, f"README's reading quotes {missing}, which results/reference/ROBUSTNESS.md does not hold"


def test_readme_headline_is_the_robustness_matrix_at_a_glance() -> None:
    # the README's headline is generated (results/reference/ROBUSTNESS.md's "At a glance" block), never typed
    start, end = "<!-- headline-matrix", "<!-- /headline-matrix -->"
    readme = (REPO / "README.md").read_text()
    page = (REPO / "results" / "reference" / "ROBUSTNESS.md").read_text()

    def block(text: str) -> str:
        i = text.index("\n", text.index(start))
        return text[i:text.index(end)].strip("\n")

    assert block(readme) and block(readme) == block(page)


def test_readme_stays_a_front_door() -> None:
    readme = (REPO / "README.md").read_text()
    assert len(readme) <= 10_000, len(readme)
    for module in ("encoders.py", "samplers.py", "losses.py", "updates.py"):
        assert module in readme  # a newcomer finds the paper's four modules from the README
