"""Conformance checks every registered method must pass (``tests/methods/test_conformance.py`` runs them).

Each check raises ``AssertionError`` with a message naming the method and what went wrong, so a
broken drop-in module fails with a readable reason. The checks run on small synthetic data with
the battery's fast settings (``BATTERY``) merged with the method's own ``test_overrides``:

* ``check_builds`` — the method builds from its defaults on the data, into a model that meets the
  contract of its kind (``onebp.model.contracts``: ``IterativeModel`` or ``OneShotModel``);
* ``check_config_roundtrip`` — resolved config → ``to_dict`` → resolved again is the same;
* ``check_score_shape`` — ``score_users`` gives finite floating (len(users), n_items) scores on the
  training device;
* ``check_one_epoch`` / ``check_loss_decreases`` — (iterative methods) one epoch has a finite loss,
  and the mean loss of the last epochs is below the first epoch's;
* ``check_train_items_masked`` — even when a method scores train items highest, none reaches the
  top-K in ``Trainer.evaluate`` (same metrics as without the boost), and scoring is repeatable;
* ``check_deterministic`` — same seed → identical scores; (iterative) another seed → different;
* ``check_checkpoint`` — ``state_dict`` → ``torch.save``/``load`` → a freshly built model (other
  seed) → ``load_state_dict`` gives the same scores;
* ``check_learns`` — test Recall@20 above a most-popular ranking's on planted data;
* ``check_space_extremes`` — at the corners of the method's search space (all lows, all highs, and
  each setting alone at either end) a few epochs give finite losses and finite scores: tuning may
  draw any of these, so none may crash or produce NaN.
"""

from __future__ import annotations

import copy
import io
import math
from collections.abc import Mapping
from typing import Any

import torch

from onebp.config import TrainConfig, resolve_config
from onebp.data.split_format import Split
from onebp.data.synthetic import SyntheticConfig, synthetic_split
from onebp.methods.spec import Method
from onebp.model.contracts import IterativeModel, OneShotModel, contract_gaps
from onebp.training.trainer import Trainer

#: shared fast settings for the tiny battery data; a method's ``test_overrides`` win over these
BATTERY: dict[str, Any] = {
    "epochs": 30, "eval_every": 5, "patience_epochs": 15, "batch_size": 128, "dim": 16, "threads": 1,
    "device": "cpu", "eval_memory_mb": 16.0,
}


def battery_split(seed: int = 0) -> Split:
    """Planted data where a model that learns clearly beats most-popular (users with long rows)."""
    return synthetic_split(SyntheticConfig(n_users=300, n_items=150, rank=4, mean_degree=25,
                                           signal=4.0, popularity_exponent=0.5, seed=seed))


def battery_settings(method: Method, **overrides: Any) -> dict[str, Any]:
    return {**BATTERY, **dict(method.test_overrides), **overrides}


def config(method: Method, split: Split, settings: Mapping[str, Any]) -> TrainConfig:
    return resolve_config(method.name, method.params, method.defaults, split.name, settings)


def make_trainer(method: Method, split: Split, **overrides: Any) -> Trainer:
    cfg = config(method, split, battery_settings(method, **overrides))
    try:
        return Trainer(method, cfg, split, log=lambda msg: None)
    except Exception as exc:  # a build error, named
        raise AssertionError(f"method {method.name!r}: build failed: {exc!r}") from exc


def _iterative(trainer: Trainer) -> bool:
    return trainer.model.iterative


def train_epochs(trainer: Trainer, epochs: int) -> list[float]:
    """Run ``epochs`` epochs (or the one-shot ``fit``); return the per-epoch losses."""
    name = trainer.method.name
    if not trainer.model.iterative:
        trainer.model.fit()
        return []
    losses = []
    for _ in range(epochs):
        try:
            row = trainer.run_epoch()
        except Exception as exc:
            raise AssertionError(f"method {name!r}: epoch {trainer.state.epoch + 1} failed: {exc}") from exc
        trainer.state.epoch = row["epoch"]
        losses.append(row["loss"])
    return losses


def scores(trainer: Trainer, users: torch.Tensor | None = None) -> torch.Tensor:
    if users is None:
        users = torch.arange(trainer.data.split.n_users, device=trainer.device)
    model = trainer.model
    model.prepare_scoring()
    return model.score_users(users)


def same_device(a: torch.device, b: torch.device) -> bool:
    """Same device type and index, where a bare ``cuda`` means the current CUDA device (so ``cuda:0``
    and ``cuda`` agree on a one-GPU machine; ``torch.device`` equality says they differ)."""
    a, b = torch.device(a), torch.device(b)
    if a.type != b.type:
        return False
    if a.type != "cuda":
        return True

    def index(d: torch.device) -> int:
        if d.index is not None:
            return d.index
        return torch.cuda.current_device() if torch.cuda.is_available() else 0

    return index(a) == index(b)


# -- the checks -------------------------------------------------------------------------------------
def check_builds(method: Method, split: Split) -> Trainer:
    trainer = make_trainer(method, split)
    check_contract(method.name, trainer.model)
    return trainer


def check_contract(name: str, model: object) -> None:
    """``model`` declares its kind (``iterative``) and has every member that kind's protocol names,
    callable with the arguments the trainer passes (``onebp.model.contracts.contract_gaps``)."""
    kind = getattr(model, "iterative", None)  # a checker: a model without its kind gets a message
    if kind is not True and kind is not False:
        raise AssertionError(f"method {name!r}: the built model ({type(model).__name__}) does not say "
                             f"its kind: a class attribute iterative = True or False, got {kind!r}")
    protocol = IterativeModel if kind else OneShotModel
    gaps = contract_gaps(model, protocol)
    if gaps:
        raise AssertionError(f"method {name!r}: the built model ({type(model).__name__}, iterative = "
                             f"{kind}) breaks the {protocol.__name__} contract: {'; '.join(gaps)}")


def check_config_roundtrip(method: Method, split: Split) -> None:
    cfg = config(method, split, battery_settings(method))
    d = cfg.to_dict()
    again = {k: v for k, v in d.items() if k not in ("method", "params")} | d["params"]
    d2 = config(method, split, again).to_dict()
    if d2 != d:
        diff = sorted(k for k in d if d.get(k) != d2.get(k))
        raise AssertionError(f"method {method.name!r}: config does not round-trip; differs in {diff}")


def check_score_shape(trainer: Trainer, users: torch.Tensor | None = None) -> None:
    name, n_items = trainer.method.name, trainer.data.split.n_items
    if users is None:
        users = torch.tensor([0, 3, 1, 3], device=trainer.device)  # unsorted, with a repeat
    s = scores(trainer, users)
    if not isinstance(s, torch.Tensor):
        raise AssertionError(f"method {name!r}: score_users returned {type(s).__name__}, not a tensor")
    if tuple(s.shape) != (len(users), n_items):
        raise AssertionError(f"method {name!r}: score_users returned shape {tuple(s.shape)}, "
                             f"expected (len(users), n_items) = {(len(users), n_items)}")
    if not s.is_floating_point():
        raise AssertionError(f"method {name!r}: score_users returned {s.dtype}, expected floating scores")
    if not same_device(s.device, trainer.device):
        raise AssertionError(f"method {name!r}: scores on {s.device}, expected the training device "
                             f"{trainer.device}")
    if not torch.isfinite(s).all():
        raise AssertionError(f"method {name!r}: score_users returned non-finite scores")


def check_one_epoch(trainer: Trainer) -> float | None:
    losses = train_epochs(trainer, 1)
    if losses and not math.isfinite(losses[0]):
        raise AssertionError(f"method {trainer.method.name!r}: loss after one epoch is {losses[0]}")
    return losses[0] if losses else None


def check_loss_decreases(trainer: Trainer, epochs: int = 6) -> list[float]:
    losses = train_epochs(trainer, epochs)
    if not losses:
        return losses
    bad = [x for x in losses if not math.isfinite(x)]
    if bad:
        raise AssertionError(f"method {trainer.method.name!r}: non-finite training loss {bad[0]}")
    tail = sum(losses[-2:]) / len(losses[-2:])
    if not tail < losses[0]:
        raise AssertionError(f"method {trainer.method.name!r}: loss did not decrease over {epochs} "
                             f"epochs: {[round(x, 5) for x in losses]}")
    return losses


def check_train_items_masked(trainer: Trainer) -> None:
    name = trainer.method.name
    train_epochs(trainer, 1)
    model = trainer.model
    plain = trainer.evaluate("valid").mean
    first = scores(trainer).clone()
    again = scores(trainer)
    if not torch.equal(first, again):
        raise AssertionError(f"method {name!r}: scoring twice gives different scores "
                             "(does evaluation modify a cached score tensor in place?)")
    original = model.score_users
    own = "score_users" in vars(model)  # an instance attribute (a wrapper) rather than the method
    train = trainer.data.train

    def boosted(users: torch.Tensor) -> torch.Tensor:
        s = original(users).clone()
        row, item = train.rows(users)
        s[row, item] = s.abs().max() * 10 + 1e6  # the method "loves" its train items
        return s

    model.score_users = boosted
    try:
        masked = trainer.evaluate("valid").mean
    finally:
        if own:
            model.score_users = original
        else:
            del model.score_users
    if masked != plain:
        diff = {k: (plain[k], masked[k]) for k in plain if plain[k] != masked[k]}
        raise AssertionError(f"method {name!r}: train items reach the evaluated top-K (metrics change "
                             f"when train items are scored highest): {diff}")


def check_deterministic(method: Method, split: Split, epochs: int = 2) -> None:
    a, b = make_trainer(method, split), make_trainer(method, split)
    train_epochs(a, epochs)
    train_epochs(b, epochs)
    if not torch.equal(scores(a), scores(b)):
        raise AssertionError(f"method {method.name!r}: same seed, different scores (a random draw not "
                             "from ctx.generator?)")
    if _iterative(a):
        c = make_trainer(method, split, seed=1)
        train_epochs(c, epochs)
        if torch.equal(scores(a), scores(c)):
            raise AssertionError(f"method {method.name!r}: seeds 0 and 1 give identical scores")


def check_checkpoint(method: Method, split: Split, epochs: int = 2) -> None:
    a = make_trainer(method, split)
    train_epochs(a, epochs)
    buf = io.BytesIO()
    torch.save(copy.deepcopy(a.model.state_dict()), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=False)
    fresh = make_trainer(method, split, seed=7)
    fresh.model.load_state_dict(state)
    if not torch.equal(scores(a), scores(fresh)):
        raise AssertionError(f"method {method.name!r}: state_dict → load_state_dict on a fresh model "
                             "does not restore the scores")
    if _iterative(a):  # training on from the checkpoint must work too
        train_epochs(fresh, 1)


def check_learns(method: Method, split: Split, margin: float = 0.02) -> tuple[float, float]:
    """Test Recall@20 after ``fit()`` with the battery settings vs most-popular's."""
    trainer = make_trainer(method, split)
    result = trainer.fit()
    recall = result["test"]["recall@20"]
    floor = most_popular_recall(trainer)
    if method.name != "mostpop" and not recall > floor + margin:
        raise AssertionError(f"method {method.name!r}: test Recall@20 {recall:.4f} is not above "
                             f"most-popular's {floor:.4f} + {margin} on planted data")
    return recall, floor


def space_corners(method: Method) -> list[dict[str, Any]]:
    """All lows, all highs, then each setting alone at its low and its high end."""
    ends = {k: dim.extremes() for k, dim in method.search_space.items()}
    if not ends:
        return []
    corners = [{k: lo for k, (lo, _) in ends.items()}, {k: hi for k, (_, hi) in ends.items()}]
    return corners + [{k: e} for k, pair in ends.items() for e in pair]


def check_space_extremes(method: Method, split: Split, epochs: int = 5) -> int:
    """Train ``epochs`` epochs at every point of :func:`space_corners`; returns how many were run."""
    points = space_corners(method)
    for point in points:
        trainer = make_trainer(method, split, **point)
        try:
            train_epochs(trainer, epochs)  # a non-finite loss fails here, naming the epoch
        except AssertionError as exc:
            raise AssertionError(f"{exc} (at search-space point {point})") from None
        if not torch.isfinite(scores(trainer)).all():
            raise AssertionError(f"method {method.name!r}: non-finite scores at search-space point {point}")
    return len(points)


def most_popular_recall(trainer: Trainer) -> float:
    from onebp.training.evaluate import full_ranking_metrics

    d = trainer.data
    pop = torch.bincount(d.train.indices, minlength=d.train.n_items).to(torch.float32)
    exclude = [d.train] + ([d.valid] if d.valid is not None else [])
    metrics = full_ranking_metrics(lambda u: pop[None, :].expand(len(u), -1), d.test, exclude, ks=(20,))
    return metrics.mean["recall@20"]


def run_battery(method: Method, split: Split | None = None, learn: bool = True) -> None:
    """Every check above on ``method`` (for a quick verdict on a new module)."""
    split = split or battery_split()
    trainer = check_builds(method, split)
    check_config_roundtrip(method, split)
    check_score_shape(trainer)
    check_one_epoch(trainer)
    check_score_shape(trainer)
    check_loss_decreases(make_trainer(method, split))
    check_train_items_masked(make_trainer(method, split))
    check_deterministic(method, split)
    check_checkpoint(method, split)
    if learn:
        check_learns(method, split)
