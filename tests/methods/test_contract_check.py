"""The conformance battery checks a built model against its kind's contract (``onebp.model.contracts``),
and the trainer relies on nothing beyond it: a model that conforms without subclassing trains."""

from __future__ import annotations

import pytest
import torch

from onebp.methods import conformance as C
from onebp.methods.registry import Method, get_method, register, unregister


@pytest.fixture(scope="module")
def split():
    return C.battery_split()


class PlainPopularity:
    """A one-shot model written against the contract without subclassing it (structural)."""

    iterative = False

    def __init__(self, train) -> None:
        self.train = train
        self.scores = torch.zeros(train.n_items)

    def fit(self) -> None:
        self.scores = torch.bincount(self.train.indices, minlength=self.train.n_items).float()

    def prepare_scoring(self) -> None:
        pass

    def score_users(self, users):
        return self.scores[None, :].expand(len(users), -1)

    def state_dict(self):
        return {"scores": self.scores.clone()}

    def load_state_dict(self, state) -> None:
        self.scores = state["scores"].clone()

    def scoring_weights(self):
        return self.state_dict()

    def load_scoring_weights(self, weights) -> None:
        self.load_state_dict(weights)


@pytest.fixture
def temporary():
    names = []

    def add(name, build):
        register(Method(name=name, build=build, citation="test", summary="contract test", module=__name__))
        names.append(name)
        return get_method(name)

    yield add
    for name in names:
        unregister(name)


def test_a_structural_one_shot_model_passes_the_check_and_trains(temporary, split):
    m = temporary("tmp-plain-pop", lambda ctx: PlainPopularity(ctx.train))
    trainer = C.check_builds(m, split)
    record = trainer.fit()
    assert record["test"]["recall@20"] == pytest.approx(C.most_popular_recall(trainer))


def test_a_model_without_its_kind_is_named(temporary, split):
    class NoKind(PlainPopularity):
        iterative = None

    m = temporary("tmp-no-kind", lambda ctx: NoKind(ctx.train))
    with pytest.raises(AssertionError, match=r"method 'tmp-no-kind': the built model \(NoKind\) does not "
                                             r"say its kind: a class attribute iterative = True or False"):
        C.check_builds(m, split)


def test_a_one_shot_model_without_fit_or_a_hook_is_named(temporary, split):
    class NoFit:
        iterative = False

        def score_users(self, users):
            return torch.zeros(len(users), 3)

        def state_dict(self):
            return {}

        def load_state_dict(self, state):
            pass

    m = temporary("tmp-no-fit", lambda ctx: NoFit())
    with pytest.raises(AssertionError, match=r"method 'tmp-no-fit': the built model \(NoFit, iterative = False\) "
                                             r"breaks the OneShotModel contract: no fit; .*no prepare_scoring"):
        C.check_builds(m, split)


def test_the_trainer_runs_no_epoch_of_a_one_shot_model(split):
    trainer = C.make_trainer(get_method("mostpop"), split)
    with pytest.raises(TypeError, match="MostPop is fitted in one shot: it has no epochs to run"):
        trainer.run_epoch()
