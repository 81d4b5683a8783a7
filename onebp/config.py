"""Run configuration: the shared training settings, and resolving ``--set key=value`` overrides.

Resolution order (later wins): ``TrainConfig`` defaults → the method's defaults for every dataset
(``"*"``) → the method's defaults for ``dataset`` → ``--set`` overrides. Method-specific
hyper-parameters live in the method's own ``params`` dataclass, declared next to the model
(``baselines/<name>.py``); ``--set`` reaches them by their field name.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from onebp.errors import UserError

METRIC_NAMES = ("precision", "recall", "ndcg", "hit", "mrr", "f1")


@dataclass
class TrainConfig:
    method: str = "onebp"
    dataset: str = ""  # picks the method's per-dataset defaults; empty = the split's name
    seed: int = 0
    protocol: Literal["clean", "paper"] = "clean"
    epochs: int = 2000
    batch_size: int = 1024
    drop_last: bool = True  # the official code drops the last partial batch
    dim: int = 32
    lr: float = 5e-4
    l2: float = 1e-5
    n_negatives: int = 5
    negatives_replace: bool = False
    temperature: float = 1.0
    beta: float = 0.99
    aggregation: Literal["per_batch", "per_epoch", "per_epoch_matched", "item_mean", "none"] = "per_batch"
    duplicate_users: Literal["sequential", "mean", "official"] = "sequential"
    fused: bool = True  # hand-written gradients where the encoder/loss allow (same numbers)
    eval_every: int = 5
    # Early stopping (protocol clean), in epochs so that it does not depend on eval_every: stop once
    # patience_epochs epochs have passed since the best validation value, but never before min_epochs.
    patience_epochs: int = 300
    min_epochs: int = 0
    select_metric: str = "ndcg@20"
    ks: tuple[int, ...] = (5, 10, 20)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # torch intra-op threads; 0 = leave torch's default
    eval_memory_mb: float = 256.0
    # Resume checkpoints by wall time (and at the end of training): minutes between them; 0 = after
    # every epoch (tests). The best model is written with the next checkpoint after it improved.
    checkpoint_minutes: float = 10.0
    profile_phases: bool = False  # seconds per phase (synchronises CUDA twice per batch: profiling only)
    # A tuning trial: trains on train, selects on validation, and never evaluates the test part
    # (the trainer refuses to; onebp.tuning.trials).
    tuning_trial: bool = False
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


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def setting_types(params_cls: type | None) -> dict[str, Any]:
    """Every setting a method accepts (shared ones and its own params) → its type."""
    shared = _field_types(TrainConfig)
    for key in ("params", "method"):
        shared.pop(key)
    return {**shared, **(_field_types(params_cls) if params_cls is not None else {})}


def parse_value(key: str, raw: Any, typ: Any) -> Any:
    """Convert a ``--set`` string (or a YAML value) to the field's type; error names the key."""
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
            (inner, *_) = typing.get_args(typ) or (str,)
            return tuple(parse_value(key, x, inner) for x in raw)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(typ) if a is not type(None)]
            if raw in (None, "none", "None", ""):
                return None
            return parse_value(key, raw, args[0])
        if typ is bool:
            if isinstance(raw, bool):
                return raw
            if str(raw).lower() in ("1", "true", "yes", "on"):
                return True
            if str(raw).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if typ is int:
            if isinstance(raw, float) and raw.is_integer():
                return int(raw)
            if isinstance(raw, bool):
                raise ValueError("expected an integer")
            return int(raw)
        if typ is float:
            if isinstance(raw, bool):
                raise ValueError("expected a number")
            return float(raw)
        if typ is str:
            return str(raw)
    except (TypeError, ValueError) as exc:
        raise UserError(f"--set {key}={raw!r}: {exc}") from None
    raise UserError(f"--set {key}: unsupported type {typ}")


def parse_assignments(items: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def resolve_config(
    method_name: str,
    params_cls: type | None,
    method_defaults: Mapping[str, Mapping[str, Any]],
    dataset: str,
    overrides: Mapping[str, Any],
) -> TrainConfig:
    """Merge defaults and overrides into a validated ``TrainConfig`` (see module docstring)."""
    shared = _field_types(TrainConfig)
    shared.pop("params")
    shared.pop("method")  # chosen by --method, not --set
    own = _field_types(params_cls) if params_cls is not None else {}
    clash = set(shared) & set(own)
    if clash:
        raise UserError(f"method {method_name!r}: params {sorted(clash)} clash with shared settings")
    known = {**shared, **own}
    dataset = str(overrides.get("dataset", dataset))
    layers = [method_defaults.get("*", {}), method_defaults.get(dataset, {}), overrides]
    values: dict[str, Any] = {}
    for layer in layers:
        for key, raw in layer.items():
            if key in RENAMED:
                raise UserError(f"setting {key!r} was replaced: {RENAMED[key]}")
            if key not in known:
                raise UserError(
                    f"unknown setting {key!r} for method {method_name!r}; known: {', '.join(sorted(known))}"
                )
            values[key] = parse_value(key, raw, known[key])
    values["method"] = method_name
    values["dataset"] = dataset
    shared_values = {k: v for k, v in values.items() if k in shared or k == "method"}
    params = params_cls(**{k: v for k, v in values.items() if k in own}) if params_cls else None
    cfg = TrainConfig(**shared_values, params=dataclasses.asdict(params) if params else {})
    validate_config(cfg)
    return cfg


def validate_config(cfg: TrainConfig) -> None:
    positive = ("epochs", "batch_size", "dim", "eval_every", "patience_epochs", "min_epochs")
    for key in positive:
        if getattr(cfg, key) < (0 if key in ("epochs", "min_epochs") else 1):
            raise UserError(f"setting {key}={getattr(cfg, key)} must be positive")
    if cfg.tuning_trial and cfg.protocol != "clean":
        raise UserError("setting tuning_trial=true needs protocol clean (a trial selects on validation "
                        "and never sees the test part)")
    if cfg.checkpoint_minutes < 0:
        raise UserError(f"setting checkpoint_minutes={cfg.checkpoint_minutes} must be >= 0")
    if not 0.0 <= cfg.beta <= 1.0:
        raise UserError(f"setting beta={cfg.beta} must lie in [0, 1]")
    if cfg.temperature <= 0:
        raise UserError(f"setting temperature={cfg.temperature} must be > 0")
    if not cfg.ks or any(k < 1 for k in cfg.ks):
        raise UserError(f"setting ks={cfg.ks}: need positive cut-offs")
    name, sep, k = cfg.select_metric.partition("@")
    if not sep or name not in METRIC_NAMES or not k.isdigit() or int(k) not in cfg.ks:
        raise UserError(
            f"setting select_metric={cfg.select_metric!r}: expected <metric>@<k> with metric in "
            f"{', '.join(METRIC_NAMES)} and k in ks={list(cfg.ks)}"
        )
    if cfg.device not in ("auto", "cpu", "cuda") and not cfg.device.startswith("cuda:"):
        raise UserError(f"setting device={cfg.device!r}: expected auto, cpu, cuda or cuda:N")
