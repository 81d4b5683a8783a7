"""Preprocessing: k-core (property tests against naive references), implicit, dedup, remap."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from onebp.data.preprocess import deduplicate, kcore_mask, remap_ids, to_implicit, write_id_maps

edges_st = st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), max_size=40, unique=True)
k_st = st.integers(0, 4)


def naive_kcore(edges: list[tuple[int, int]], ku: int, ki: int) -> set[tuple[int, int]]:
    """Repeatedly delete one edge of an under-degree user or item (pure Python reference)."""
    alive = set(edges)
    changed = True
    while changed:
        changed = False
        du: dict[int, int] = {}
        di: dict[int, int] = {}
        for u, i in alive:
            du[u] = du.get(u, 0) + 1
            di[i] = di.get(i, 0) + 1
        for u, i in sorted(alive):
            if du[u] < ku or di[i] < ki:
                alive.discard((u, i))
                changed = True
                break
    return alive


def has_property(edges: set[tuple[int, int]], ku: int, ki: int) -> bool:
    du: dict[int, int] = {}
    di: dict[int, int] = {}
    for u, i in edges:
        du[u] = du.get(u, 0) + 1
        di[i] = di.get(i, 0) + 1
    return all(d >= ku for d in du.values()) and all(d >= ki for d in di.values())


def run(edges, ku, ki) -> set[tuple[int, int]]:
    arr = np.array(edges, dtype=np.int64).reshape(-1, 2)
    mask = kcore_mask(arr[:, 0], arr[:, 1], ku, ki)
    return {tuple(map(int, e)) for e in arr[mask]}


@settings(max_examples=150, deadline=None)
@given(edges_st, k_st, k_st)
def test_kcore_matches_naive_and_has_property(edges, ku, ki):
    got = run(edges, ku, ki)
    assert got == naive_kcore(edges, ku, ki)
    assert has_property(got, ku, ki)
    assert run(sorted(got), ku, ki) == got  # idempotent


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), max_size=10, unique=True), k_st, k_st)
def test_kcore_is_union_of_all_subgraphs_with_the_property(edges, ku, ki):
    got = run(edges, ku, ki)
    union: set[tuple[int, int]] = set()
    for r in range(len(edges) + 1):
        for subset in itertools.combinations(edges, r):
            if has_property(set(subset), ku, ki):
                union |= set(subset)
    assert got == union


def test_kcore_chain_needs_several_rounds():
    # Dropping user 2 (degree 1) drops item 2 below 2, then user 1, item 1, user 0: five rounds.
    edges = [(0, 0), (0, 1), (1, 1), (1, 2), (2, 2), (3, 0), (3, 3), (4, 3), (4, 0)]
    assert run(edges, 2, 2) == {(3, 0), (3, 3), (4, 3), (4, 0)}
    assert run(edges, 0, 0) == set(edges)
    assert run(edges, 1, 3) == {(0, 0), (3, 0), (4, 0)}  # only item 0 has 3 users


def test_implicit_dedup_and_remap(tmp_path):
    frame = pd.DataFrame(
        {"user": [10, 10, 30, 30, 20], "item": [5, 5, 7, 9, 7], "rating": [1, 4, 5, 3, 2], "timestamp": [9, 3, 1, 2, 5]}
    )
    assert len(to_implicit(frame, None)) == 5
    assert to_implicit(frame, 3)["rating"].min() >= 3
    dedup = deduplicate(frame)
    assert len(dedup) == 4
    assert dedup[(dedup.user == 10) & (dedup.item == 5)]["timestamp"].tolist() == [3]  # earliest kept
    remapped, users, items = remap_ids(dedup)
    assert users.tolist() == [10, 20, 30] and items.tolist() == [5, 7, 9]
    assert sorted(remapped["user"].unique()) == [0, 1, 2]
    assert (users[remapped["user"]] == dedup["user"].to_numpy()).all()
    write_id_maps(tmp_path, users, items)
    assert (tmp_path / "user_map.tsv").read_text() == "new_id\toriginal_id\n0\t10\n1\t20\n2\t30\n"
