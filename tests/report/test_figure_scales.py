"""Readable figures: a setting that dwarfs the others gets the rest their own panel (off_scale, the
sweep figure's second axis); many methods' curves differ in colour and dash pattern."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from onebp.report.collect import collect
from onebp.report.figures import fig_curves, method_styles, off_scale, sweep_figure
from tests.report.test_tables import N_USERS, fake_run, per_user


def test_off_scale_finds_the_setting_that_dwarfs_the_others() -> None:
    # the 200-epoch ML-100K ablation: frozen users (none) at 0.058 beside 0.42-0.43, TwoBP's line 0.419
    ablation = {"none": 0.0584, "item_mean": 0.4285, "per_batch": 0.4215, "per_epoch": 0.4204,
                "per_epoch_matched": 0.4285, "twobp": 0.4194}
    assert off_scale(ablation) == ["none"]
    assert off_scale({k: v for k, v in ablation.items() if k != "none"}) == []  # all on one scale
    assert off_scale({"a": 0.1, "b": 0.9}) == []  # two values: nothing to zoom into
    assert off_scale({"a": 0.42, "b": 0.43, "c": float("nan")}) == []
    # one far below and one far above: both leave, the cluster stays
    assert sorted(off_scale({"low": 0.05, "x": 0.42, "y": 0.425, "z": 0.43, "high": 0.95})) == ["high", "low"]
    # a spread-out sweep (β 0.90 ... 0.999: 0.402 ... 0.4295) is not split
    assert off_scale({0.9: 0.402, 0.95: 0.416, 0.969: 0.4215, 0.99: 0.4295, 0.995: 0.4275}) == []


def _ablation_study(root: Path, none_shift: float) -> tuple:
    rng = np.random.default_rng(0)
    base = rng.uniform(0.3, 0.5, N_USERS)
    dirs = []
    for seed in range(2):
        noise = rng.normal(0, 0.005, N_USERS)
        dirs.append(fake_run(root, "toy", "onebp", seed, per_user(base + noise, 0.0),
                             cfg={"aggregation": "per_batch"}))
        dirs.append(fake_run(root, "toy", "twobp", seed, per_user(base + noise, -0.002)))
        for tag, shift in (("none", none_shift), ("item_mean", 0.007), ("per_epoch_matched", 0.0)):
            dirs.append(fake_run(root, "toy", "onebp", seed, per_user(base + noise, shift),
                                 setting=f"aggregation={tag}-12345678", cfg={"aggregation": tag}))
    return collect(dirs)


def test_ablation_figure_gets_a_second_axis_for_the_rest(tmp_path: Path) -> None:
    df, runs = _ablation_study(tmp_path / "far", -0.35)
    fig = sweep_figure(df, runs, "aggregation", "clean", "ndcg@20")
    assert len(fig.axes) == 2
    full, zoom = fig.axes
    assert full.get_ylim()[0] < 0.2  # the full panel shows the frozen-user control (~0.13; the rest ~0.48)
    lo, hi = zoom.get_ylim()
    assert lo > 0.4 and hi - lo < 0.05  # the rest on their own scale: a 0.007 step is visible
    assert "without none" in zoom.get_title()
    df2, runs2 = _ablation_study(tmp_path / "near", -0.004)  # nothing dwarfs the rest
    assert len(sweep_figure(df2, runs2, "aggregation", "clean", "ndcg@20").axes) == 1


def test_many_methods_differ_in_colour_and_dash() -> None:
    methods = [f"m{i}" for i in range(12)]
    styles = method_styles(methods)
    assert len(set(map(str, styles.values()))) == 12  # every (colour, dash) pair distinct
    for a, b in zip(methods, methods[1:], strict=False):  # neighbours differ in both
        assert styles[a][0] != styles[b][0] and styles[a][1] != styles[b][1]


def test_curves_figure_draws_each_method_with_its_style(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = np.random.default_rng(0).uniform(0.3, 0.5, N_USERS)
    dirs = [fake_run(tmp_path, "toy", f"m{i}", s, per_user(base, 0.01 * i)) for i in range(6) for s in range(2)]
    df, _ = collect(dirs)
    import onebp.report.figures as F

    seen: dict = {}
    real = F.sns.relplot

    def spy(*args, **kw):  # the styles fig_curves asks seaborn for
        seen.update(kw)
        return real(*args, **kw)

    monkeypatch.setattr(F.sns, "relplot", spy)
    paths = fig_curves(df, tmp_path / "figs", "clean", "ndcg@20")
    assert all(p.exists() for p in paths)
    assert seen["style"] == "method" and seen["hue"] == "method"
    pairs = {m: (tuple(seen["palette"][m]), seen["dashes"][m]) for m in (f"m{i}" for i in range(6))}
    assert len(set(pairs.values())) == 6 and len({d for _, d in pairs.values()}) == 4
