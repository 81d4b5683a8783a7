"""Settings: every one declared with a docstring, a section and its constraints, and one validation
layer that refuses a bad value with one line naming the key and the value — before ``onebp train``
writes anything (issue 16: settings that train nothing, or fail late)."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
import typing
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onebp.cli import main
from onebp.config import (
    SECTIONS,
    TrainConfig,
    check_setting,
    parse_value,
    resolve_config,
    setting,
    settings_by_section,
    settings_help,
    validate_config,
)
from onebp.errors import UserError

#: the flat keys of config.json (runs are identified by them): a new or renamed key fails here first
CONFIG_KEYS = {
    "method", "dataset", "seed", "protocol", "epochs", "batch_size", "drop_last", "dim", "lr", "l2",
    "n_negatives", "negatives_replace", "temperature", "beta", "aggregation", "duplicate_users", "fused",
    "eval_every", "patience_epochs", "min_epochs", "select_metric", "ks", "device", "threads",
    "eval_memory_mb", "checkpoint_minutes", "profile_phases", "tuning_trial", "params",
}


def resolve(overrides: dict, method: str = "onebp", params_cls: type | None = None) -> TrainConfig:
    return resolve_config(method, params_cls, {}, "tiny", overrides, onebp_update=True)


# -- declarations ---------------------------------------------------------------------------------------
def test_every_setting_has_a_doc_a_section_and_config_json_keeps_its_keys() -> None:
    fields = [f for f in dataclasses.fields(TrainConfig) if f.name not in ("method", "params")]
    for f in fields:
        assert f.metadata.get("doc") and "\n" not in f.metadata["doc"], f.name
        assert f.metadata.get("section") in SECTIONS, f.name
    # Declared section by section, in SECTIONS' order (the class reads as the grouped list).
    order = [f.metadata["section"] for f in fields]
    assert order == sorted(order, key=list(SECTIONS).index)
    assert set(SECTIONS) == {"protocol", "optimizer", "encoder", "sampler", "loss", "update", "machine"}
    assert all(entries for entries in settings_by_section().values())
    assert set(TrainConfig().to_dict()) == CONFIG_KEYS
    text = settings_help()
    assert all(f"  {f.name}=" in text for f in fields) and all(f"{s}: " in text for s in SECTIONS)


# -- bad values: one line naming the key and the value ------------------------------------------------
BAD = [
    # (key, value as --set gives it, what the message says)
    ("temperature", "inf", "finite"),
    ("temperature", "0", "> 0"),
    ("checkpoint_minutes", "nan", "finite"),
    ("checkpoint_minutes", "-1", ">= 0"),
    ("dim", "12.9", "integer"),
    ("dim", 12.9, "integer"),  # a YAML/JSON float is refused too, not truncated to 12
    ("dim", "0", ">= 1"),
    ("dim", True, "integer"),
    ("lr", "nan", "finite"),
    ("lr", "-0.001", "> 0"),
    ("lr", "0", "> 0"),
    ("lr", "-inf", "finite"),
    ("l2", "-1e-5", ">= 0"),
    ("n_negatives", "-1", ">= 0"),
    ("eval_memory_mb", "0", "> 0"),
    ("eval_memory_mb", "inf", "finite"),
    ("device", "cuda:x", "cuda:N"),
    ("device", "cuda:", "cuda:N"),
    ("device", "gpu", "cuda:N"),
    ("device", "cuda:01", "cuda:N"),
    ("select_metric", "ndcg@020", "<metric>@<k>"),
    ("select_metric", "ndcg@0", "<metric>@<k>"),
    ("select_metric", "ndcg", "<metric>@<k>"),
    ("select_metric", "auc@20", "<metric>@<k>"),
    ("select_metric", "ndcg@30", "not one of ks"),
    ("ks", "5,0,20", "must be >= 1"),
    ("ks", "5,5,20", "twice"),
    ("ks", "", "non-empty"),
    ("beta", "1.5", "<= 1"),
    ("beta", "-0.1", ">= 0"),
    ("beta", "nan", "finite"),
    ("epochs", "-1", ">= 0"),
    ("batch_size", "0", ">= 1"),
    ("eval_every", "0", ">= 1"),
    ("patience_epochs", "0", ">= 1"),
    ("seed", "-1", ">= 0"),
    ("seed", "1e3", "integer"),
    ("threads", "-2", ">= 0"),
    ("protocol", "test", "one of"),
    ("aggregation", "sum", "one of"),
    ("fused", "maybe", "true or false"),
]


@pytest.mark.parametrize(("key", "value", "why"), BAD, ids=[f"{k}={v!r}" for k, v, _ in BAD])
def test_a_bad_value_is_one_line_naming_the_key_and_value(key, value, why) -> None:
    with pytest.raises(UserError) as err:
        resolve({key: value})
    message = str(err.value)
    assert f"{key}=" in message and why in message and "\n" not in message


EDGES = [  # (overrides, the parsed values the config must then hold)
    ({"beta": "0"}, {"beta": 0.0}), ({"beta": "1"}, {"beta": 1.0}), ({"beta": 1}, {"beta": 1.0}),
    ({"l2": "0"}, {"l2": 0.0}), ({"lr": "1e38"}, {"lr": 1e38}), ({"lr": "1e-300"}, {"lr": 1e-300}),
    ({"temperature": "1e-300"}, {"temperature": 1e-300}), ({"epochs": "0"}, {"epochs": 0}),
    ({"min_epochs": "0"}, {"min_epochs": 0}), ({"threads": "0"}, {"threads": 0}),
    ({"checkpoint_minutes": "0"}, {"checkpoint_minutes": 0.0}), ({"n_negatives": "0"}, {"n_negatives": 0}),
    ({"seed": str(2**40)}, {"seed": 2**40}), ({"dim": 12.0}, {"dim": 12}), ({"dim": " 12 "}, {"dim": 12}),
    ({"dim": "+7"}, {"dim": 7}), ({"device": "cuda:0"}, {"device": "cuda:0"}),
    ({"device": "cuda:12"}, {"device": "cuda:12"}), ({"device": "cpu"}, {"device": "cpu"}),
    ({"ks": "1", "select_metric": "hit@1"}, {"ks": (1,), "select_metric": "hit@1"}),
    ({"select_metric": "mrr@5"}, {"select_metric": "mrr@5"}),
    ({"ks": [3, 7], "select_metric": "f1@7"}, {"ks": (3, 7), "select_metric": "f1@7"}),
    ({"eval_memory_mb": "1e-3"}, {"eval_memory_mb": 1e-3}), ({"eval_memory_mb": 64}, {"eval_memory_mb": 64.0}),
    ({"aggregation": "none"}, {"aggregation": "none"}), ({"fused": "off"}, {"fused": False}),
]


@pytest.mark.parametrize(("overrides", "expected"), EDGES, ids=[repr(o) for o, _ in EDGES])
def test_edge_values_in_range_are_accepted_and_parsed(overrides, expected) -> None:
    config = resolve(overrides)
    got = {k: getattr(config, k) for k in expected}
    assert got == expected
    # integer settings stay integers (a float 12.0 would print as 12.0 in run ids and configs)
    assert all(type(got[k]) is int for k, v in expected.items() if type(v) is int)


def test_an_integer_setting_is_never_rounded() -> None:
    assert resolve({"dim": 12.0}).dim == 12 and isinstance(resolve({"dim": 12.0}).dim, int)
    for raw in ("12.9", 12.9, "12.0", "1e1", None, [12]):
        with pytest.raises(UserError, match="dim"):
            parse_value("dim", raw, int)


def test_validate_config_catches_a_config_built_by_hand() -> None:
    validate_config(TrainConfig())
    for bad in ({"lr": math.nan}, {"dim": 12.5}, {"dim": True}, {"device": "cuda:x"}, {"ks": ()},
                {"select_metric": "ndcg@020"}, {"beta": math.inf}):
        with pytest.raises(UserError, match=next(iter(bad))):
            validate_config(dataclasses.replace(TrainConfig(), **bad))


# -- a method's own params: plain dataclasses keep working; setting() adds constraints ------------------
@dataclass
class PlainParams:
    gamma: float = 1.0
    n_layers: int = 3
    init_std: float | None = None


@dataclass
class DeclaredParams:
    margin: float = setting(0.5, doc="cosine margin", ge=-1.0, le=1.0)


def test_method_params_plain_or_declared() -> None:
    cfg = resolve({"gamma": "2", "n_layers": "2", "init_std": "none"}, params_cls=PlainParams)
    assert cfg.params == {"gamma": 2.0, "n_layers": 2, "init_std": None}
    assert resolve({"init_std": "0.1"}, params_cls=PlainParams).params["init_std"] == 0.1
    for key, value in (("gamma", "nan"), ("n_layers", "2.5"), ("init_std", "inf")):
        with pytest.raises(UserError, match=f"{key}="):
            resolve({key: value}, params_cls=PlainParams)
    assert resolve({"margin": "-1"}, params_cls=DeclaredParams).params == {"margin": -1.0}
    with pytest.raises(UserError, match=r"margin=1\.5: must be <= 1\.0"):
        resolve({"margin": "1.5"}, params_cls=DeclaredParams)


# -- settings of the OneBP update belong to methods that have one ------------------------------------
def test_onebp_update_settings_are_refused_without_a_onebp_update() -> None:
    for key, value in (("beta", "0.5"), ("aggregation", "none"), ("duplicate_users", "mean")):
        with pytest.raises(UserError) as err:
            resolve_config("twobp", None, {}, "x", {key: value}, onebp_update=False)
        assert f"--set {key}=" in str(err.value) and "'twobp'" in str(err.value)
        # ... and in the method's own defaults, for every dataset or one
        for defaults in ({"*": {key: value}}, {"x": {key: value}}):
            with pytest.raises(UserError, match=f"method 'm': its defaults .* set {key}="):
                resolve_config("m", None, defaults, "x", {}, onebp_update=False)
        assert getattr(resolve_config("onebp", None, {}, "x", {key: value}, onebp_update=True), key) != \
            getattr(TrainConfig(), key)
    # Not set: the recorded value is the default (config.json keeps its keys for every method).
    assert resolve_config("twobp", None, {}, "x", {}, onebp_update=False).beta == TrainConfig().beta


# -- property: random finite values in range are accepted, NaN/inf/out of range refused --------------
def _numeric_settings() -> dict[str, tuple[type, dict]]:
    hints = typing.get_type_hints(TrainConfig)
    return {f.name: (hints[f.name], dict(f.metadata)) for f in dataclasses.fields(TrainConfig)
            if hints[f.name] in (int, float)}


NUMERIC = _numeric_settings()


def _in_range(typ: type, meta: dict) -> st.SearchStrategy:
    lo = meta.get("ge", meta.get("gt"))
    hi = meta.get("le", meta.get("lt"))
    if typ is int:
        low = int(lo) + (1 if "gt" in meta else 0) if lo is not None else -(10**9)
        return st.integers(min_value=low, max_value=int(hi) if hi is not None else low + 10**9)
    return st.floats(min_value=lo, max_value=hi, exclude_min="gt" in meta, exclude_max="lt" in meta,
                     allow_nan=False, allow_infinity=False)


def _as_given(value, as_text: bool):
    return repr(value) if as_text else value  # --set hands over text; YAML and JSON, numbers


@settings(max_examples=300, deadline=None)
@given(data=st.data(), key=st.sampled_from(sorted(NUMERIC)), as_text=st.booleans())
def test_property_values_in_range_accepted(data, key, as_text) -> None:
    typ, meta = NUMERIC[key]
    value = data.draw(_in_range(typ, meta))
    # min_epochs is bounded by epochs as well (validate_config): give it room
    room = {"epochs": max(value, TrainConfig().epochs)} if key == "min_epochs" else {}
    cfg = resolve({key: _as_given(value, as_text), **room})
    assert getattr(cfg, key) == value


@settings(max_examples=300, deadline=None)
@given(data=st.data(), key=st.sampled_from(sorted(NUMERIC)), as_text=st.booleans())
def test_property_nan_inf_and_out_of_range_refused(data, key, as_text) -> None:
    typ, meta = NUMERIC[key]
    choices = []
    if "ge" in meta or "gt" in meta:
        lo = meta.get("ge", meta.get("gt"))
        below = st.floats(max_value=lo, exclude_max="ge" in meta, allow_nan=False, allow_infinity=False)
        choices.append(below.map(math.floor) if typ is int else below)
    if "le" in meta or "lt" in meta:
        hi = meta.get("le", meta.get("lt"))
        choices.append(st.floats(min_value=hi, exclude_min="le" in meta, allow_nan=False, allow_infinity=False))
    if typ is float:
        choices.append(st.sampled_from([math.nan, math.inf, -math.inf]))
    else:  # an integer setting: a fraction is refused, never rounded
        choices.append(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9)
                       .filter(lambda x: not x.is_integer()))
    value = data.draw(st.one_of(choices))
    with pytest.raises(UserError) as err:
        resolve({key: _as_given(value, as_text)})
    assert f"{key}=" in str(err.value) and "\n" not in str(err.value)


def test_check_setting_names_the_key_for_any_type() -> None:
    with pytest.raises(UserError, match=r"^setting x='a': expected a number$"):
        check_setting("x", "a", float)
    with pytest.raises(UserError, match=r"^setting x=nan: expected a finite number$"):
        check_setting("x", math.nan, float | None)
    check_setting("x", None, float | None)


# -- the command line: exit 2, one line, no traceback, nothing written ---------------------------------
FAST = ["--set", "epochs=2", "--set", "eval_every=1", "--set", "dim=8", "--set", "batch_size=128",
        "--set", "threads=1"]

CLI_BAD = [
    ("onebp", "temperature=inf"), ("onebp", "checkpoint_minutes=nan"), ("onebp", "dim=12.9"),
    ("onebp", "lr=nan"), ("onebp", "lr=-1"), ("onebp", "l2=-1"), ("onebp", "n_negatives=-1"),
    ("onebp", "eval_memory_mb=0"), ("onebp", "device=cuda:x"), ("onebp", "select_metric=ndcg@020"),
    # a sampler that needs negatives refuses zero of them (it used to train nothing to loss 0.0)
    ("onebp", "n_negatives=0"), ("twobp", "n_negatives=0"),
]


@pytest.mark.parametrize(("method", "assignment"), CLI_BAD, ids=[f"{m}-{a}" for m, a in CLI_BAD])
def test_train_refuses_a_bad_setting_before_writing_anything(tiny_split_dir, tmp_path, capsys, method,
                                                            assignment) -> None:
    out = tmp_path / "runs" / "run"
    code = main(["train", "--data", str(tiny_split_dir), "--method", method, *FAST, "--set", assignment,
                 "--out", str(out)])
    _, err = capsys.readouterr()
    key = assignment.partition("=")[0]
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("onebp: error: ") and f"{key}=" in err, err
    assert not out.exists()


def test_in_batch_methods_still_train_with_zero_negatives(tiny_split_dir, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    code = main(["train", "--data", str(tiny_split_dir), "--method", "onebp-directau", *FAST,
                 "--set", "n_negatives=0", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert (out / "metrics.json").is_file()


def test_a_real_process_prints_one_line_and_no_traceback(tiny_split_dir, tmp_path) -> None:
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "onebp", "train", "--data", str(tiny_split_dir), "--method",
                           "onebp", "--set", "select_metric=ndcg@020", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "select_metric='ndcg@020'" in proc.stderr and not out.exists()


@pytest.mark.parametrize(("key", "hint"), [("dimm", "'dim'"), ("learning_rate", "'lr'"), ("weight_decay", "'l2'"),
                                            ("batchsize", "'batch_size'")])
def test_an_unknown_setting_suggests_the_closest_one(key: str, hint: str) -> None:
    with pytest.raises(UserError) as err:
        resolve_config("onebp", None, {}, "x", {key: "1"})
    assert f"unknown setting {key!r} for method 'onebp' (did you mean {hint}?); known: " in str(err.value)


def test_an_unknown_setting_far_from_every_name_gets_no_guess() -> None:
    with pytest.raises(UserError, match=r"unknown setting 'zzzzqq' for method 'onebp'; known: "):
        resolve_config("onebp", None, {}, "x", {"zzzzqq": "1"})


def test_min_epochs_may_not_exceed_epochs() -> None:
    with pytest.raises(UserError, match=r"^setting min_epochs=5: must be <= epochs=2$"):
        resolve_config("onebp", None, {}, "x", {"epochs": "2", "min_epochs": "5"})
    assert resolve_config("onebp", None, {}, "x", {"epochs": "5", "min_epochs": "5"}).min_epochs == 5


def test_errors_name_the_source_of_a_value() -> None:
    with pytest.raises(UserError, match=r"^--params-file p\.json: dim=4\.5: expected an integer$"):
        resolve_config("onebp", None, {}, "x", {"dim": 4.5}, sources={"dim": "--params-file p.json"})
    with pytest.raises(UserError, match=r"^--set dim=4\.5: expected an integer$"):
        resolve_config("onebp", None, {}, "x", {"dim": 4.5})
