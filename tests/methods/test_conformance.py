"""Conformance battery: every registered method (including ones dropped in later) runs every check
of ``onebp.methods.conformance``; a temporary drop-in module is discovered and checked; deliberately broken
methods fail with readable messages."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from onebp.methods import conformance as C
from onebp.methods.registry import Method, discover, get_method, method_names, register, unregister
from onebp.model.compose import compose
from onebp.model.losses import BPR

METHODS = method_names()


@pytest.fixture(scope="module")
def split():
    return C.battery_split()


def test_the_issue_methods_are_registered():
    expected = {"onebp", "twobp", "bpr-mf", "lightgcn", "directau", "simplex", "buir", "mostpop", "ease",
                "onebp-lightgcn", "onebp-bpr", "onebp-directau"}
    assert expected <= set(METHODS)
    for name in METHODS:
        m = get_method(name)
        assert m.citation and m.summary, f"{name}: citation and summary are required"


@pytest.mark.parametrize("name", METHODS)
def test_builds_from_defaults_and_config_round_trips(name, split):
    m = get_method(name)
    C.check_builds(m, split)
    C.check_config_roundtrip(m, split)


@pytest.mark.parametrize("name", METHODS)
def test_one_epoch_finite_and_score_shape(name, split):
    m = get_method(name)
    trainer = C.check_builds(m, split)
    C.check_score_shape(trainer)  # before training too (scores of the initial model)
    C.check_one_epoch(trainer)
    C.check_score_shape(trainer)


@pytest.mark.parametrize("name", METHODS)
def test_loss_decreases(name, split):
    trainer = C.make_trainer(get_method(name), split)
    if not trainer.model.iterative:  # fitted once (MostPop, EASE): there is no training loss to watch
        pytest.skip(f"{name}: a one-shot model has no training loss")
    assert len(C.check_loss_decreases(trainer)) == 6  # one finite loss per epoch, the last ones lower


@pytest.mark.parametrize("name", METHODS)
def test_train_items_never_in_the_top_k(name, split):
    C.check_train_items_masked(C.make_trainer(get_method(name), split))


@pytest.mark.parametrize("name", METHODS)
def test_same_seed_same_scores(name, split):
    C.check_deterministic(get_method(name), split)


@pytest.mark.parametrize("name", METHODS)
def test_checkpoint_restores_scores(name, split):
    C.check_checkpoint(get_method(name), split)


@pytest.mark.parametrize("name", METHODS)
def test_search_space_extremes_train_without_nan(name, split):
    m = get_method(name)
    assert C.check_space_extremes(m, split) == (2 + 2 * len(m.search_space) if m.search_space else 0)


@pytest.mark.slow
@pytest.mark.parametrize("name", METHODS)
def test_learns_more_than_most_popular(name, split):
    recall, floor = C.check_learns(get_method(name), split)  # fails unless recall > floor + margin …
    if name == "mostpop":  # … except for MostPop, which must agree with the battery's own popularity ranking
        assert recall == pytest.approx(floor, abs=1e-12)


# -- drop-in modules ---------------------------------------------------------------------------------
DROP_IN = textwrap.dedent('''
    """A drop-in test baseline: MF + BPR, composed from the shared modules."""
    from dataclasses import dataclass

    from onebp.model.losses import BPR
    from onebp.model.compose import compose
    from onebp.methods.registry import Method, register


    @dataclass
    class Params:
        unused_knob: float = 0.5


    register(Method(
        name="{name}",
        build=lambda ctx: compose(ctx, "mf", BPR(), "backprop"),
        params=Params,
        defaults={{"*": {{"n_negatives": 1, "lr": 1e-3}}}},
        citation="test", summary="temporary drop-in",
        test_overrides={{"lr": 0.02, "l2": 0.0}},
    ))
''')


def test_a_dropped_in_module_is_discovered_trained_and_checked(tmp_path, split):
    name = "tmp-dropin-bpr"
    (tmp_path / "dropin.py").write_text(DROP_IN.format(name=name))
    try:
        discover([tmp_path])
        assert name in method_names()
        m = get_method(name)
        assert m.module.endswith("dropin.py")
        C.run_battery(m, split)
        # The command line sees it too (a fresh process: --baselines DIR).
        out = subprocess.run([sys.executable, "-m", "onebp", "methods", "--baselines", str(tmp_path)],
                             capture_output=True, text=True, check=True).stdout
        assert f"{name}\ttemporary drop-in" in out
    finally:
        unregister(name)


class NaNLoss:
    def __call__(self, user_vecs, pos_vecs, neg_vecs):
        return (user_vecs * pos_vecs).sum() * float("nan")


def _wrong_shape(ctx):
    model = compose(ctx, "mf", BPR(), "backprop")
    score = model.score_users
    model.score_users = lambda users: score(users)[:, :-1]
    return model


@pytest.fixture
def temporary():
    names = []

    def add(name, build, **kw):
        register(Method(name=name, build=build, defaults={"*": {"n_negatives": 1}}, citation="test",
                        summary="broken on purpose", module=__name__, **kw))
        names.append(name)
        return get_method(name)

    yield add
    for name in names:
        unregister(name)


def test_nan_loss_fails_with_a_readable_message(temporary, split):
    m = temporary("tmp-nan-loss", lambda ctx: compose(ctx, "mf", NaNLoss(), "backprop"))
    trainer = C.check_builds(m, split)
    with pytest.raises(AssertionError, match=r"method 'tmp-nan-loss': epoch 1 failed: .*loss is nan"):
        C.check_one_epoch(trainer)


def test_wrong_score_shape_fails_with_a_readable_message(temporary, split):
    m = temporary("tmp-wrong-shape", _wrong_shape)
    trainer = C.check_builds(m, split)
    with pytest.raises(AssertionError, match=r"method 'tmp-wrong-shape': score_users returned shape "
                                             r"\(4, 149\), expected .* \(4, 150\)"):
        C.check_score_shape(trainer)


def test_unseeded_randomness_fails_the_determinism_check(temporary, split):
    import torch

    def build(ctx):
        model = compose(ctx, "mf", BPR(), "backprop")
        with torch.no_grad():
            model.encoder.item_table.add_(torch.randn_like(model.encoder.item_table))  # global RNG
        return model

    m = temporary("tmp-unseeded", build)
    with pytest.raises(AssertionError, match="same seed, different scores"):
        C.check_deterministic(m, split)


def test_a_model_that_does_not_learn_fails_the_band(temporary, split):
    m = temporary("tmp-no-learning", lambda ctx: compose(ctx, "mf", BPR(), "backprop"),
                  test_overrides={"lr": 1e-9, "epochs": 2})
    with pytest.raises(AssertionError, match=r"test Recall@20 .* is not above most-popular's"):
        C.check_learns(m, split)


def test_missing_state_restore_fails_the_checkpoint_check(temporary, split):
    def build(ctx):
        model = compose(ctx, "mf", BPR(), "backprop")
        model.load_state_dict = lambda state: None
        return model

    m = temporary("tmp-no-restore", build)
    with pytest.raises(AssertionError, match="does not restore the scores"):
        C.check_checkpoint(m, split)


def test_same_device_compares_type_and_index() -> None:
    import torch

    from onebp.methods.conformance import same_device

    assert same_device(torch.device("cuda:0"), torch.device("cuda")) if not torch.cuda.is_available() \
        else same_device(torch.device(f"cuda:{torch.cuda.current_device()}"), torch.device("cuda"))
    assert not same_device(torch.device("cuda:1"), torch.device("cuda:0"))
    assert not same_device(torch.device("cpu"), torch.device("cuda:0"))
    assert same_device(torch.device("cpu"), torch.device("cpu"))
