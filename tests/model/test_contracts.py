"""The contracts in code (``onebp.model.contracts``): every registered method's model, every update
strategy and the losses meet their protocols, and no ``hasattr`` probing creeps back into the package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from onebp.methods.conformance import battery_split, make_trainer
from onebp.methods.one_shot import MostPop
from onebp.methods.registry import get_method, method_names
from onebp.model.aggregation import AGGREGATIONS
from onebp.model.contracts import (
    AllItemsLoss,
    IterativeModel,
    Loss,
    NegativeSampler,
    OneShotModel,
    ScoresLoss,
    TrainableModel,
    UpdateStrategy,
    contract_gaps,
    protocol_members,
)
from onebp.model.encoders import MF, BootstrapMF
from onebp.model.interactions import UserItems
from onebp.model.losses import BPR, BootstrapLoss, CosineContrastive, DirectAU, InfoNCE
from onebp.model.momentum import MomentumTarget
from onebp.model.samplers import InBatchNegatives, UniformNegatives
from onebp.model.two_tower import TwoTowerModel
from onebp.model.updates import Backprop, OneBP

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def split():
    return battery_split()


# -- every registered method's model ---------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(method_names()))
def test_every_registered_method_builds_a_model_that_meets_its_kind_of_contract(name, split):
    model = make_trainer(get_method(name), split).model
    assert model.iterative is True or model.iterative is False
    protocol = IterativeModel if model.iterative else OneShotModel
    assert isinstance(model, protocol)
    assert contract_gaps(model, protocol) == []
    if model.iterative:
        assert contract_gaps(model.sampler, NegativeSampler) == []
        assert contract_gaps(model.strategy, UpdateStrategy) == []
    else:
        assert not isinstance(model, IterativeModel)


def test_the_kinds_are_told_apart_by_their_explicit_attribute():
    assert IterativeModel.iterative is True and OneShotModel.iterative is False
    assert TwoTowerModel.iterative is True and MostPop.iterative is False
    # what tells the kinds apart beyond `iterative`: epochs and a sampler, or fit()
    assert set(protocol_members(IterativeModel)) - set(protocol_members(TrainableModel)) == {
        "sampler", "begin_epoch", "step", "after_step", "end_epoch"}
    assert set(protocol_members(OneShotModel)) - set(protocol_members(TrainableModel)) == {"fit"}


# -- update strategies -----------------------------------------------------------------------------
def _mf(seed: int = 0) -> MF:
    return MF(6, 9, 4, torch.Generator().manual_seed(seed), torch.device("cpu"))


def _strategies() -> dict[str, UpdateStrategy]:
    out: dict[str, UpdateStrategy] = {"backprop": Backprop(_mf(), InfoNCE(), 0.01, 0.0, True, 4)}
    for aggregation in AGGREGATIONS:  # OneBP and each ablation of its user update
        out[f"onebp/{aggregation}"] = OneBP(_mf(), InfoNCE(), 0.01, 0.0, True, 4, beta=0.9,
                                            aggregation=aggregation)
    boot = BootstrapMF(6, 9, 4, torch.Generator().manual_seed(0), torch.device("cpu"))
    out["momentum"] = MomentumTarget(boot, BootstrapLoss(), 0.01, 0.0, 4, tau=0.9)
    return out


@pytest.mark.parametrize("name", sorted(_strategies()))
def test_each_update_strategy_meets_the_update_contract_and_runs_an_epoch_through_it(name):
    strategy = _strategies()[name]
    assert contract_gaps(strategy, UpdateStrategy) == []
    users, pos = torch.tensor([0, 1, 2, 3, 4, 5, 0, 1]), torch.tensor([1, 2, 3, 4, 5, 6, 7, 8])
    neg = None if name == "momentum" else torch.tensor([[0], [1], [2], [3], [4], [5], [6], [0]])
    strategy.begin_epoch(users, pos, neg)
    for b in range(2):
        assert torch.isfinite(strategy.step(b))
        strategy.after_step(b)
    train = UserItems.from_pairs(torch.stack([users, pos], 1).numpy(), 6, 9, torch.device("cpu"))
    strategy.end_epoch(train)
    strategy.load_state_dict(strategy.state_dict())


def test_a_strategy_that_leaves_out_a_required_method_cannot_be_built():
    class NoStep(UpdateStrategy):  # subclassing the protocol: its hooks are inherited, step is not
        def begin_epoch(self, users, pos, neg):
            pass

        def state_dict(self):
            return {}

        def load_state_dict(self, state):
            pass

    with pytest.raises(TypeError, match="step"):
        NoStep()


def test_contract_gaps_names_a_missing_member_and_a_wrong_signature():
    class Loose:  # structural, not subclassing: what a drop-in written without the protocol looks like
        iterative = True
        sampler = InBatchNegatives()

        def begin_epoch(self, users):  # one argument short
            pass

        def step(self, b):
            return torch.zeros(())

        def score_users(self, users):
            return torch.zeros(len(users), 3)

        def state_dict(self):
            return {}

        def load_state_dict(self, state):
            pass

    gaps = contract_gaps(Loose(), IterativeModel)
    assert "begin_epoch cannot be called with 3 argument(s) as IterativeModel says" in gaps
    assert {"no after_step", "no end_epoch", "no prepare_scoring", "no scoring_weights"} <= set(gaps)
    assert not isinstance(Loose(), IterativeModel)


# -- losses: the optional capabilities the strategies dispatch on ----------------------------------
def test_loss_capabilities_are_protocols_the_strategies_read_once():
    assert isinstance(InfoNCE(), ScoresLoss) and isinstance(BPR(), ScoresLoss)
    assert isinstance(CosineContrastive(), AllItemsLoss) and not isinstance(CosineContrastive(), ScoresLoss)
    assert not isinstance(DirectAU(), ScoresLoss) and not isinstance(DirectAU(), AllItemsLoss)
    for loss in (InfoNCE(), BPR(), DirectAU(), CosineContrastive()):
        assert contract_gaps(loss, Loss) == []
    assert Backprop(_mf(), InfoNCE(), 0.01, 0.0, True, 4).fused
    assert not Backprop(_mf(), DirectAU(), 0.01, 0.0, True, 4).fused  # no value_and_grad: autograd
    assert not Backprop(_mf(), InfoNCE(), 0.01, 0.0, False, 4).fused  # fused switched off
    assert Backprop(_mf(), CosineContrastive(), 0.01, 0.0, True, 4).all_items
    assert not Backprop(_mf(), BPR(), 0.01, 0.0, True, 4).all_items


# -- the hooks' defaults ---------------------------------------------------------------------------
def test_one_shot_models_inherit_the_no_op_hooks_and_whole_state_scoring_weights(split):
    model = make_trainer(get_method("mostpop"), split).model
    model.fit()
    model.prepare_scoring()  # the contract's no-op
    assert set(model.scoring_weights()) == set(model.state_dict()) == {"popularity"}
    weights = {"popularity": torch.arange(float(split.n_items))}
    model.load_scoring_weights(weights)
    assert torch.equal(model.popularity, weights["popularity"])


def test_a_two_tower_models_scoring_weights_are_its_encoder_only(split):
    model = make_trainer(get_method("onebp"), split).model
    assert set(model.scoring_weights()) == set(model.encoder.state_dict())
    assert set(model.state_dict()) == {"encoder", "strategy"}


def test_samplers_meet_the_sampler_contract(split):
    train = make_trainer(get_method("onebp"), split).data.train
    assert contract_gaps(UniformNegatives(train, 2), NegativeSampler) == []
    assert contract_gaps(InBatchNegatives(), NegativeSampler) == []


# -- no hasattr probing ------------------------------------------------------------------------------
#: the only ``hasattr(obj, "name")`` calls allowed in the package and the baselines, each with its reason
HASATTR_ALLOWED = {
    # which torch this is (a private fused kernel), not what a model, strategy or loss can do
    ("onebp/model/optimizer.py", "_fused_adam_"),
    # a tuning value that may be a numpy/torch scalar: converting a value, not probing a contract
    ("onebp/tuning/trials.py", "item"),
}


def hasattr_calls(source: str) -> list[tuple[int, str]]:
    """(line, probed name) of every ``hasattr(...)`` call in ``source`` (name "?" if not a literal)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if called == "hasattr":
                arg = node.args[1] if len(node.args) > 1 else None
                name = arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else "?"
                found.append((node.lineno, name))
    return found


def test_the_probe_finder_finds_probes():
    src = 'import builtins\nif hasattr(m, "prepare_scoring"):\n    pass\nok = builtins.hasattr(m, name)\n'
    assert hasattr_calls(src) == [(2, "prepare_scoring"), (4, "?")]


def test_no_hasattr_probing_outside_the_allow_list():
    found = set()
    for path in sorted([*(ROOT / "onebp").rglob("*.py"), *(ROOT / "baselines").glob("*.py")]):
        rel = path.relative_to(ROOT).as_posix()
        for line, name in hasattr_calls(path.read_text()):
            found.add((rel, name, line))
    probes = sorted(f"{rel}:{line} hasattr(..., {name!r})" for rel, name, line in found
                    if (rel, name) not in HASATTR_ALLOWED)
    assert probes == [], ("a capability is part of a contract (onebp.model.contracts): declare it there "
                          "instead of probing for it, or add the probe to HASATTR_ALLOWED with its reason")
    # the allow-list names probes that still exist (it does not silently allow more than it says)
    assert {(rel, name) for rel, name, _ in found} == HASATTR_ALLOWED
