"""The on-disk split format: what is saved loads back equal; a malformed part file is an error naming
the file and line; loading a split (every run does) imports no pandas."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

from onebp.data.split_format import Split, SplitError, canonical_pairs, load_split, save_split


def test_saved_parts_load_back_equal_including_an_empty_part(tmp_path):
    rng = np.random.default_rng(0)
    pairs = np.unique(rng.integers(0, 40, size=(300, 2)), axis=0)
    split = Split(n_users=40, n_items=40, parts={"train": pairs[:250], "valid": pairs[:0], "test": pairs[250:]},
                  name="s")
    loaded = load_split(save_split(split, tmp_path / "s"))
    for name, part in split.parts.items():
        got = loaded.parts[name]
        assert got.dtype == np.int64 and got.shape == (len(part), 2)
        assert np.array_equal(got, canonical_pairs(part)), name


@pytest.mark.parametrize("line, message", [
    ("12\tseven", r"train.tsv:4: expected two integers 'user<TAB>item', got '12\\tseven'"),
    ("12\t7\t3", r"train.tsv:4: expected two integers 'user<TAB>item', got '12\\t7\\t3'"),
    ("12", r"train.tsv:4: expected two integers 'user<TAB>item', got '12'"),
    ("1.5\t2", r"train.tsv:4: expected two integers"),
])
def test_a_malformed_line_is_named(tiny_split_dir, tmp_path, line, message):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_split_dir, bad)
    lines = (bad / "train.tsv").read_text().splitlines()
    lines[3] = line
    (bad / "train.tsv").write_text("\n".join(lines) + "\n")
    with pytest.raises(SplitError, match=message):
        load_split(bad)


def test_a_wrong_header_is_named(tiny_split_dir, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_split_dir, bad)
    text = (bad / "test.tsv").read_text()
    (bad / "test.tsv").write_text("u\ti" + text[len("user\titem"):])
    with pytest.raises(SplitError, match=r"test.tsv:1: expected header 'user<TAB>item', got \['u', 'i'\]"):
        load_split(bad)


def test_loading_a_split_imports_no_pandas(tiny_split_dir):
    code = (f"import sys; from onebp.data.split_format import load_split; load_split({str(tiny_split_dir)!r}); "
            "print('pandas' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
