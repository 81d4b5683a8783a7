"""Run configuration: the shared training settings, their constraints, and resolving overrides.

Resolution order (later wins): ``TrainConfig`` defaults → the method's defaults for every dataset
(``"*"``) → the method's defaults for ``dataset`` → ``--set`` overrides. Method-specific
hyper-parameters live in the method's own ``params`` dataclass, declared next to the model
(``baselines/<name>.py``); ``--set`` reaches them by their field name.

Every shared setting is declared with :func:`setting`: its default, a one-line docstring, the
section it configures (``SECTIONS``) and its constraints (bounds, a pattern). :func:`resolve_config`
checks every value against them (:func:`validate_config`) before a run writes anything, so a bad
value is one line naming the key, never a traceback or a run that silently trains nothing. A
method's ``params`` dataclass may declare its fields with :func:`setting` too (optional: a plain
field gets the type and finiteness checks). Settings of the OneBP update (``needs="onebp_update"``)
belong to the methods that have one (``Method.onebp_update``): setting them for any other method,
in its defaults or by ``--set``, is refused.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from onebp.errors import UserError

METRIC_NAMES = ("precision", "recall", "ndcg", "hit", "mrr", "f1")

#: What each section of settings configures (``onebp train`` settings, in this order).
SECTIONS: dict[str, str] = {
    "protocol": "what is trained and evaluated: the data's name, the seed, the epochs and how the "
                "reported epoch is selected",
    "optimizer": "the gradient steps: learning rate, weight decay, batches",
    "encoder": "the towers' embeddings",
    "sampler": "the negative items drawn for each training interaction",
    "loss": "the training objective",
    "update": "how the towers are updated (the OneBP update's own settings, and the fused path)",
    "machine": "where and how the run executes: device, threads, memory, checkpoints, profiling",
}

#: the capabilities a setting may need from its method (``setting(needs=...)``), and what they are
NEEDS = {"onebp_update": "a OneBP update (users by moving aggregation)"}


def setting(default: Any, *, doc: str, section: str | None = None, ge: float | None = None,
            gt: float | None = None, le: float | None = None, lt: float | None = None,
            pattern: str | None = None, expect: str | None = None, needs: str | None = None) -> Any:
    """A dataclass field that declares a setting: ``doc`` (one line), its ``section`` (a key of
    ``SECTIONS``; None for a method's own params), bounds (``ge``/``gt``/``le``/``lt``: inclusive or
    strict; for a tuple, each element), a ``pattern`` a string must match in full (``expect``: what
    it means, for the error), and ``needs``:
    the method capability (``NEEDS``) without which the setting does nothing and is refused."""
    if section is not None and section not in SECTIONS:
        raise ValueError(f"unknown section {section!r}; expected one of {', '.join(SECTIONS)}")
    if needs is not None and needs not in NEEDS:
        raise ValueError(f"unknown capability {needs!r}; expected one of {', '.join(NEEDS)}")
    meta = {"doc": doc, "section": section, "ge": ge, "gt": gt, "le": le, "lt": lt,
            "pattern": pattern, "expect": expect, "needs": needs}
    return field(default=default, metadata={k: v for k, v in meta.items() if v is not None})


_METRIC_PATTERN = rf"(?:{'|'.join(METRIC_NAMES)})@[1-9][0-9]*"


@dataclass
class TrainConfig:
    """The shared settings of a run, flat (``config.json`` holds them as they are here), grouped by
    ``SECTIONS`` in this order; ``method`` and the method's own ``params`` stand outside them."""

    method: str = "onebp"

    # -- protocol ---------------------------------------------------------------------------------
    dataset: str = setting("", section="protocol",
                           doc="picks the method's per-dataset defaults; empty = the split's name")
    seed: int = setting(0, section="protocol", ge=0, doc="training seed (initialisation, batches, negatives)")
    protocol: Literal["clean", "paper"] = setting(
        "clean", section="protocol", doc="clean: select the epoch on validation; paper: on test, as the paper")
    # 0 stays allowed: `benchmarks/startup.py` times `onebp train --set epochs=0` (build, evaluate the
    # untrained model, test) to measure what a run pays before its first epoch.
    epochs: int = setting(2000, section="protocol", ge=0,
                          doc="maximum training epochs (0: none, the untrained model is evaluated; "
                              "one-shot methods ignore it)")
    eval_every: int = setting(5, section="protocol", ge=1, doc="evaluate every this many epochs")
    # Early stopping (protocol clean), in epochs so that it does not depend on eval_every: stop once
    # patience_epochs epochs have passed since the best validation value, but never before min_epochs.
    patience_epochs: int = setting(300, section="protocol", ge=1,
                                   doc="stop after this many epochs without a better validation value")
    min_epochs: int = setting(0, section="protocol", ge=0,
                              doc="never stop early before this epoch (at most epochs)")
    select_metric: str = setting(
        "ndcg@20", section="protocol", pattern=_METRIC_PATTERN,
        expect=f"<metric>@<k> with metric one of {', '.join(METRIC_NAMES)} and k a cut-off in ks",
        doc="<metric>@<k> that selects the reported epoch (k one of ks)")
    ks: tuple[int, ...] = setting((5, 10, 20), section="protocol", ge=1, doc="ranking cut-offs evaluated")
    # A tuning trial: trains on train, selects on validation, and never evaluates the test part
    # (the trainer refuses to; onebp.tuning.trials).
    tuning_trial: bool = setting(False, section="protocol",
                                 doc="a tuning trial: selects on validation and never evaluates test")

    # -- optimizer --------------------------------------------------------------------------------
    lr: float = setting(5e-4, section="optimizer", gt=0.0, doc="learning rate (Adam)")
    l2: float = setting(1e-5, section="optimizer", ge=0.0, doc="weight decay (Adam's L2)")
    batch_size: int = setting(1024, section="optimizer", ge=1, doc="training interactions per batch")
    drop_last: bool = setting(True, section="optimizer",
                              doc="drop the last partial batch (as the official code does)")

    # -- encoder ----------------------------------------------------------------------------------
    dim: int = setting(32, section="encoder", ge=1, doc="embedding dimension")

    # -- sampler ----------------------------------------------------------------------------------
    n_negatives: int = setting(5, section="sampler", ge=0,
                               doc="sampled negatives per interaction (0 only for in-batch methods)")
    negatives_replace: bool = setting(False, section="sampler",
                                      doc="draw a row's negatives with replacement")

    # -- loss -------------------------------------------------------------------------------------
    temperature: float = setting(1.0, section="loss", gt=0.0, doc="InfoNCE temperature τ")

    # -- update -----------------------------------------------------------------------------------
    beta: float = setting(0.99, section="update", ge=0.0, le=1.0, needs="onebp_update",
                          doc="OneBP's moving-aggregation coefficient β")
    aggregation: Literal["per_batch", "per_epoch", "per_epoch_matched", "item_mean", "none"] = setting(
        "per_batch", section="update", needs="onebp_update",
        doc="OneBP's user update: per_batch (the paper) or an ablation")
    duplicate_users: Literal["sequential", "mean", "official"] = setting(
        "sequential", section="update", needs="onebp_update",
        doc="OneBP: how a user several times in one batch is aggregated")
    fused: bool = setting(True, section="update",
                          doc="hand-written gradients where the encoder/loss allow (same numbers)")

    # -- machine ----------------------------------------------------------------------------------
    device: str = setting("auto", section="machine", pattern=r"auto|cpu|cuda|cuda:(?:0|[1-9][0-9]*)",
                          expect="auto, cpu, cuda or cuda:N", doc="auto, cpu, cuda or cuda:N (a device index)")
    threads: int = setting(0, section="machine", ge=0, doc="torch intra-op threads; 0 = torch's default")
    eval_memory_mb: float = setting(256.0, section="machine", gt=0.0,
                                    doc="memory budget of one evaluation block, in MB")
    # Resume checkpoints by wall time (and at the end of training): minutes between them; 0 = after
    # every epoch (tests). The best model is written with the next checkpoint after it improved.
    checkpoint_minutes: float = setting(10.0, section="machine", ge=0.0,
                                        doc="minutes between resume checkpoints; 0 = every epoch")
    profile_phases: bool = setting(False, section="machine",
                                   doc="time each phase (synchronises CUDA twice per batch: profiling only)")

    params: dict[str, Any] = field(default_factory=dict)  # the method's own hyper-parameters

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["ks"] = list(self.ks)
        return out


#: settings that no longer exist, and what replaces them
RENAMED = {
    "checkpoint_every": "checkpoints are written by wall time: use checkpoint_minutes (default 10)",
    "patience": "use patience_epochs (epochs without improvement, e.g. eval_every × the old "
                "number of evaluations) and optionally min_epochs",
}

#: ``TrainConfig`` fields that are not settings: ``--method`` picks the method, ``params`` holds its own
NOT_SETTINGS = ("method", "params")


def _fields(cls: type) -> dict[str, tuple[Any, Mapping[str, Any]]]:
    """Field name → (type, metadata) of a dataclass."""
    hints = typing.get_type_hints(cls)
    return {f.name: (hints[f.name], f.metadata) for f in dataclasses.fields(cls)}


def _shared_fields() -> dict[str, tuple[Any, Mapping[str, Any]]]:
    return {k: v for k, v in _fields(TrainConfig).items() if k not in NOT_SETTINGS}


def _field_types(cls: type) -> dict[str, Any]:
    return {k: typ for k, (typ, _) in _fields(cls).items()}


def _allowed(meta: Mapping[str, Any], onebp_update: bool | None) -> bool:
    """Whether a method with (or without) a OneBP update may set this setting (None: not known)."""
    return meta.get("needs") != "onebp_update" or onebp_update is not False


def setting_types(params_cls: type | None, onebp_update: bool | None = None) -> dict[str, Any]:
    """Every setting a method accepts (shared ones and its own params) → its type. With
    ``onebp_update=False``, the OneBP update's settings are not among them."""
    shared = {k: typ for k, (typ, meta) in _shared_fields().items() if _allowed(meta, onebp_update)}
    return {**shared, **(_field_types(params_cls) if params_cls is not None else {})}


def settings_by_section() -> dict[str, list[tuple[str, str]]]:
    """Section → [(setting, one-line doc)], in ``SECTIONS`` and declaration order."""
    out: dict[str, list[tuple[str, str]]] = {s: [] for s in SECTIONS}
    for f in dataclasses.fields(TrainConfig):
        if f.name not in NOT_SETTINGS:
            out[f.metadata["section"]].append((f.name, f.metadata["doc"]))
    return out


def settings_help() -> str:
    """The shared settings, grouped by section with their defaults and docstrings (for help texts)."""
    defaults = TrainConfig()
    lines = []
    for section, entries in settings_by_section().items():
        lines.append(f"{section}: {SECTIONS[section]}")
        for name, doc in entries:
            value = getattr(defaults, name)
            lines.append(f"  {name}={','.join(map(str, value)) if isinstance(value, tuple) else value}  {doc}")
    return "\n".join(lines)


# -- parsing ------------------------------------------------------------------------------------------
def parse_value(key: str, raw: Any, typ: Any, source: str = "--set") -> Any:
    """Convert a ``--set`` string (or a YAML/JSON value) to the field's type; error names the key
    and ``source`` (where the value came from: ``--set``, or e.g. ``--params-file p.json``).
    Nothing is rounded: ``12.9`` for an integer setting is refused, not truncated to 12."""
    origin = typing.get_origin(typ)
    try:
        if origin is Literal:
            choices = typing.get_args(typ)
            if raw not in choices:
                raise ValueError(f"expected one of {', '.join(map(str, choices))}")
            return raw
        if origin in (tuple, list) or typ in (tuple, list):
            if isinstance(raw, str):
                raw = [x for x in raw.replace(" ", "").split(",") if x]
            if not isinstance(raw, (list, tuple)):
                raise ValueError("expected a comma-separated list")
            (inner, *_) = typing.get_args(typ) or (str,)
            return tuple(parse_value(key, x, inner, source) for x in raw)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(typ) if a is not type(None)]
            if raw in (None, "none", "None", ""):
                return None
            return parse_value(key, raw, args[0], source)
        if typ is bool:
            if isinstance(raw, bool):
                return raw
            if str(raw).lower() in ("1", "true", "yes", "on"):
                return True
            if str(raw).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if typ is int:
            return _parse_int(raw)
        if typ is float:
            if isinstance(raw, bool) or raw is None:
                raise ValueError("expected a number")
            return float(raw)
        if typ is str:
            if not isinstance(raw, (str, int, float)) or isinstance(raw, bool):
                raise ValueError("expected a string")
            return str(raw)
    except (TypeError, ValueError, OverflowError) as exc:
        raise UserError(f"{_where(source)}{key}={raw!r}: {exc}") from None
    raise UserError(f"{_where(source)}{key}: unsupported type {typ}")


def _where(source: str) -> str:
    """The prefix naming a value's source: ``--set key=...`` reads as typed; a file is followed by
    a colon (``--params-file p.json: key=...``)."""
    return f"{source} " if source == "--set" else f"{source}: "


#: names other libraries (and papers) use for a setting, for the "did you mean" of an unknown key;
#: too far from ours for difflib to find
ALIASES = {"learning_rate": "lr", "weight_decay": "l2", "embedding_dim": "dim", "embedding_size": "dim",
           "num_negatives": "n_negatives", "neg_num": "n_negatives", "max_epochs": "epochs",
           "tau": "temperature", "eval_step": "eval_every"}


def did_you_mean(key: str, known: Collection[str]) -> str:
    """`` (did you mean 'x'?)`` for a mistyped setting, or an empty string when nothing is close."""
    alias = ALIASES.get(key.lower())
    close = [alias] if alias in known else difflib.get_close_matches(key, sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _parse_int(raw: Any) -> int:
    if isinstance(raw, bool) or raw is None:
        raise ValueError("expected an integer")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float):
        if not raw.is_integer():  # int() would silently drop the fraction (dim 12.9 → 12)
            raise ValueError("expected an integer")
        return int(raw)
    text = str(raw).strip()
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ValueError("expected an integer")
    return int(text)


def parse_assignments(items: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


# -- resolving ----------------------------------------------------------------------------------------
def resolve_config(
    method_name: str,
    params_cls: type | None,
    method_defaults: Mapping[str, Mapping[str, Any]],
    dataset: str,
    overrides: Mapping[str, Any],
    *,
    onebp_update: bool | None = None,
    sources: Mapping[str, str] | None = None,
) -> TrainConfig:
    """Merge defaults and overrides into a validated ``TrainConfig`` (see module docstring).

    ``onebp_update`` is the method's ``Method.onebp_update``: False refuses the OneBP update's
    settings (``beta``, ``aggregation``, ``duplicate_users``) in its defaults and in ``overrides``;
    None (a caller that does not know the method) does not check them. ``sources`` names where an
    override came from (key → e.g. ``--params-file p.json``; default ``--set``), for the errors."""
    sources = sources or {}
    shared = _shared_fields()
    own = _fields(params_cls) if params_cls is not None else {}
    clash = set(shared) & set(own)
    if clash:
        raise UserError(f"method {method_name!r}: params {sorted(clash)} clash with shared settings")
    known = {**shared, **own}
    dataset = str(overrides.get("dataset", dataset))
    layers = [("*", method_defaults.get("*", {})), (dataset, method_defaults.get(dataset, {})),
              (None, overrides)]
    values: dict[str, Any] = {}
    allowed = sorted(k for k, (_, m) in known.items() if _allowed(m, onebp_update))
    for source, layer in layers:
        for key, raw in layer.items():
            # where this value came from: --set, a --params-file, or the method's own defaults
            origin = sources.get(key, "--set") if source is None else \
                f"method {method_name!r}: its defaults for {source!r}"
            prefix = "" if origin == "--set" else f"{origin}: "
            if key in RENAMED:
                raise UserError(f"{prefix}setting {key!r} was replaced: {RENAMED[key]}")
            if key not in known:
                raise UserError(
                    f"{prefix}unknown setting {key!r} for method {method_name!r}"
                    f"{did_you_mean(key, allowed)}; known: {', '.join(allowed)}"
                )
            typ, meta = known[key]
            if not _allowed(meta, onebp_update):
                where = f"{origin} set {key}={raw!r}" if source is not None else f"{_where(origin)}{key}={raw!r}"
                raise UserError(f"{where}: {key!r} configures the OneBP update, and method "
                                f"{method_name!r} has none; it applies only to methods with a OneBP update")
            values[key] = parse_value(key, raw, typ, origin)
    values["method"] = method_name
    values["dataset"] = dataset
    shared_values = {k: v for k, v in values.items() if k in shared or k == "method"}
    params = params_cls(**{k: v for k, v in values.items() if k in own}) if params_cls else None
    cfg = TrainConfig(**shared_values, params=dataclasses.asdict(params) if params else {})
    validate_config(cfg, params_cls)
    return cfg


# -- validating ---------------------------------------------------------------------------------------
def check_setting(key: str, value: Any, typ: Any, meta: Mapping[str, Any] | None = None) -> None:
    """Raise ``UserError`` (one line naming ``key`` and ``value``) unless ``value`` has the type
    ``typ`` and meets the constraints in ``meta`` (``setting``'s metadata). Floats must be finite."""
    meta = meta or {}

    def bad(why: str) -> UserError:
        return UserError(f"setting {key}={value!r}: {why}")

    origin = typing.get_origin(typ)
    if origin is Literal:
        if value not in typing.get_args(typ):
            raise bad(f"expected one of {', '.join(map(str, typing.get_args(typ)))}")
        return
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(typ):
            return
        (inner, *_) = [a for a in typing.get_args(typ) if a is not type(None)]
        check_setting(key, value, inner, meta)
        return
    if origin in (tuple, list):
        if not isinstance(value, (tuple, list)) or not value:
            raise bad("expected a non-empty list")
        (inner, *_) = typing.get_args(typ) or (Any,)
        for item in value:
            try:
                check_setting(key, item, inner, meta)
            except UserError as exc:
                raise bad(f"element {item!r}: {str(exc).partition(': ')[2]}") from None
        return
    if typ is bool:
        if not isinstance(value, bool):
            raise bad("expected true or false")
        return
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("expected an integer")
    elif typ is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("expected a number")
        if not math.isfinite(value):
            raise bad("expected a finite number")
    elif typ is str:
        if not isinstance(value, str):
            raise bad("expected a string")
        pattern = meta.get("pattern")
        if pattern is not None and not re.fullmatch(pattern, value):
            raise bad(f"expected {meta.get('expect') or 'a value matching ' + pattern}")
        return
    else:
        return  # a type this layer does not know (a method's own): its dataclass's business
    for name, ok, text in (("ge", lambda v, b: v >= b, ">="), ("gt", lambda v, b: v > b, ">"),
                           ("le", lambda v, b: v <= b, "<="), ("lt", lambda v, b: v < b, "<")):
        bound = meta.get(name)
        if bound is not None and not ok(value, bound):
            raise bad(f"must be {text} {bound}")


def validate_config(cfg: TrainConfig, params_cls: type | None = None) -> None:
    """Check every setting of ``cfg`` (and of its ``params`` against ``params_cls``, when given)
    against its declaration, then the rules that tie settings together. Raises ``UserError``."""
    for key, (typ, meta) in _shared_fields().items():
        check_setting(key, getattr(cfg, key), typ, meta)
    if params_cls is not None:
        for key, (typ, meta) in _fields(params_cls).items():
            check_setting(key, cfg.params.get(key), typ, meta)
    if cfg.tuning_trial and cfg.protocol != "clean":
        raise UserError("setting tuning_trial=true needs protocol clean (a trial selects on validation "
                        "and never sees the test part)")
    if cfg.min_epochs > cfg.epochs:  # else early stopping's floor is silently never reached
        raise UserError(f"setting min_epochs={cfg.min_epochs}: must be <= epochs={cfg.epochs}")
    if len(set(cfg.ks)) != len(cfg.ks):
        raise UserError(f"setting ks={','.join(map(str, cfg.ks))}: a cut-off appears twice")
    k = int(cfg.select_metric.partition("@")[2])
    if k not in cfg.ks:
        raise UserError(
            f"setting select_metric={cfg.select_metric!r}: k={k} is not one of ks={','.join(map(str, cfg.ks))} "
            f"(metrics: {', '.join(METRIC_NAMES)})"
        )


def refused_settings(onebp_update: bool | None) -> Collection[str]:
    """The shared settings a method with (or without) a OneBP update may not set."""
    return tuple(k for k, (_, meta) in _shared_fields().items() if not _allowed(meta, onebp_update))
