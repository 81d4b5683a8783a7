"""The workflow's plan: which splits and runs the config asks for, and their on-disk paths.

Pure Python, imported by the Snakefile (so it can be tested and read without Snakemake). It turns
the validated config into
- one split per dataset × protocol: ``data/splits/<dataset>/<protocol>-<hash>`` (hash of the data
  source and the preprocessing parameters, so a changed parameter gets a new split);
- one run per dataset × method × setting × protocol × seed:
  ``results/runs/<dataset>/<method>/<setting>/<protocol>/seed<seed>`` (``onebp.report.layout``);
- with a ``tuning`` block, the tuning trials of every method with a search space, whose best
  settings its runs read (``tuning_plan.py``).
It also checks what the JSON schema cannot: method names against ``onebp.methods.registry``, dataset names
against ``onebp.data.catalog`` (or a custom source) — also those keyed under dataset_options,
method_params, method_resources and bench —, every hyper-parameter override against the trainer's own
config resolution, and the report block against what the runs evaluate (report.reference among the
methods, report.metrics/metric known metrics, report.ks and report.metric's k among the runs' ks), so
a typo fails at parse time, naming the key.
"""

from __future__ import annotations

import json
import os
import shlex
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import tuning_plan  # workflow/, next to this module (on sys.path wherever the plan is imported)

from onebp.errors import UserError
from onebp.report.layout import MAIN, setting_hash, setting_id, sweep_tag

# Set by the train rule itself (they are path wildcards or do not change results).
RULE_KEYS = ("seed", "protocol", "dataset", "threads", "device", "tuning_trial")
SOURCE_KEYS = ("url", "sha256", "format", "test_url", "test_sha256", "dataset_file", "base_url")


class ConfigError(ValueError):
    """A config mistake; the message names the key."""


@dataclass(frozen=True)
class Run:
    dataset: str
    method: str
    setting: str
    protocol: str
    seed: int

    @property
    def run_dir(self) -> str:
        return f"results/runs/{self.dataset}/{self.method}/{self.setting}/{self.protocol}/seed{self.seed}"


@dataclass
class StudyPlan:
    config: dict[str, Any]
    splits: dict[tuple[str, str], str] = field(default_factory=dict)  # (dataset, protocol) -> prep id
    prepare_args: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    settings: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    runs: list[Run] = field(default_factory=list)
    sweep_params: list[str] = field(default_factory=list)
    tuning: tuning_plan.TuningPlan | None = None

    # -- paths and command-line pieces used by the rules --------------------------------------
    def split_dir(self, dataset: str, protocol: str) -> str:
        return f"data/splits/{dataset}/{self.splits[(dataset, protocol)]}"

    def source_args(self, dataset: str) -> str:
        """The dataset's source flags, less its definition file (``dataset_file``): that is a declared
        input of the download and prepare jobs, passed from {input} (``raw_dir_args``)."""
        opts = self.config["dataset_options"].get(dataset, {})
        args = ["--dataset", dataset]
        for key in SOURCE_KEYS:
            if key != "dataset_file" and opts.get(key) is not None:
                args += [f"--{key.replace('_', '-')}", str(opts[key])]
        if opts.get("allow_unverified"):
            args.append("--allow-unverified")
        return shlex.join(args)

    def dataset_file(self, dataset: str) -> list[str]:
        """``dataset_options.<dataset>.dataset_file`` (a JSON definition), as a job input: a storage
        plugin brings it to the job, and an edit reruns download and prepare. [] when there is none."""
        path = self.config["dataset_options"].get(dataset, {}).get("dataset_file")
        return [str(path)] if path is not None else []

    def raw_dataset(self, dataset: str) -> Any:
        """The ``onebp.data.catalog.Dataset`` that ``onebp data download|prepare`` resolve from the
        dataset's source options (the same flags as :meth:`source_args`)."""
        from onebp.data.catalog import custom_dataset, get_dataset, load_dataset_file

        opts = self.config["dataset_options"].get(dataset, {})
        if opts.get("dataset_file"):
            return load_dataset_file(opts["dataset_file"])
        if opts.get("url"):
            files = [{"role": "train" if opts.get("test_url") else "all", "format": opts.get("format"),
                      "url": opts["url"], "sha256": opts.get("sha256")}]
            if opts.get("test_url"):
                files.append({"role": "test", "format": opts.get("format"), "url": opts["test_url"],
                              "sha256": opts.get("test_sha256")})
            return custom_dataset({"name": dataset, "files": files})
        return get_dataset(dataset)

    def raw_files(self, dataset: str) -> list[str]:
        """The raw files ``download`` leaves in ``data/raw/<dataset>/`` and ``prepare`` reads: one per
        input of the dataset (its archive, or its plain file). An archive whose interactions member
        was placed by hand instead (``onebp data download`` accepts that when the member's checksum
        is pinned) declares the member, so a hand-placed ``u.data`` keeps working. Declared, they are
        what a storage plugin uploads and brings to the prepare jobs (no shared file system)."""
        try:
            ds = self.raw_dataset(dataset)
        except UserError as exc:
            raise ConfigError(f"dataset_options.{dataset}: {exc}") from None
        folder = f"data/raw/{dataset}"
        files = []
        for inp in ds.inputs:
            name, member = inp.file.filename, inp.file.member
            if (member is not None and member.sha256 and not os.path.exists(f"{folder}/{name}")
                    and os.path.exists(f"{folder}/{member.filename}")):
                name = member.filename
            files.append(f"{folder}/{name}")
        return files

    def prepare_cli(self, dataset: str, protocol: str) -> str:
        return shlex.join(self.prepare_args[(dataset, protocol)])

    def set_args(self, dataset: str, method: str, setting: str) -> str:
        return shlex.join(a for k, v in self.settings[(dataset, method, setting)].items()
                          for a in ("--set", f"{k}={_cli_value(v)}"))

    def resolved(self, dataset: str, method: str, setting: str) -> dict[str, Any]:
        """What a run of ``setting`` trains with, as ``onebp train`` resolves it: shared defaults →
        the method's defaults for ``dataset`` (e.g. the paper's table) → the setting's overrides."""
        overrides = self.settings[(dataset, method, setting)]
        return _check_overrides(f"{dataset}/{method}/{setting}", method, dataset, overrides)

    def run_dirs(self) -> list[str]:
        return [r.run_dir for r in self.runs]

    def tuned_inputs(self, dataset: str, method: str) -> list[str]:
        """``best.json`` of a tuned method (its runs' extra input), else nothing."""
        return self.tuning.best_files(dataset, method) if self.tuning else []

    def params_file_args(self, dataset: str, method: str) -> str:
        return params_file_args(self.tuned_inputs(dataset, method))

    def train_resource(self, key: str, default: Any):
        """A resource of the train rule: the method's own value for the dataset (or "*") in
        method_resources, else the dataset's own value, else resources.train, else default."""

        def get(wildcards: Any) -> Any:
            return self.job_resource(wildcards.dataset, getattr(wildcards, "method", None), key, default)

        return get

    def job_resource(self, dataset: str, method: str | None, key: str, default: Any) -> Any:
        by_method = self.config.get("method_resources", {}).get(method, {}) if method else {}
        for layer in (by_method.get(dataset), by_method.get("*"),
                      self.config["dataset_options"].get(dataset, {}).get("resources"),
                      self.config["resources"]["train"]):
            if layer and key in layer:
                return layer[key]
        return default

    def largest_job_resource(self, key: str, default: Any) -> Any:
        """The largest ``job_resource`` over the study's datasets × methods (a job that runs them all,
        as ``snakemake estimate`` does, needs the most any of them needs)."""
        values = [self.job_resource(ds, m, key, default) for ds in self.config["datasets"]
                  for m in self.config["methods"]]
        return max(values, default=default)

    def primary_protocol(self) -> str:
        protocols = self.config["protocols"]
        return "clean" if "clean" in protocols else protocols[0]


def download_rule_name(dataset: str) -> str:
    """The download rule of ``dataset`` (one per dataset: its outputs are the dataset's raw files):
    ``download_<dataset>``, every character other than a letter, digit or _ as _."""
    return "download_" + "".join(c if c.isalnum() or c == "_" else "_" for c in dataset)


def raw_dir_of(raw_file: str) -> str:
    """RAW_DIR (quoted for the shell) of a raw file ``RAW_DIR/<dataset>/<file>``: where the job was
    given the declared raw files (``data/raw`` locally; under a storage plugin, its local copy)."""
    return shlex.quote(os.path.dirname(os.path.dirname(str(raw_file))))


def root_of(local_path: str, planned_path: str) -> str:
    """The directory that holds the workflow's files, from one declared file: ``local_path`` is where
    the job was given ``planned_path`` (relative to the working directory), "." when they are equal."""
    local = os.path.normpath(str(local_path))
    planned = os.path.normpath(planned_path)
    if local == planned:
        return "."
    if not local.endswith(os.sep + planned):
        raise ValueError(f"{local} is not a copy of {planned}")
    return local[: -len(planned) - 1] or os.sep


def raw_dir_args(path: str, dataset_file: Any, is_dir: bool = False) -> str:
    """The value after ``--raw-dir`` in the download and prepare commands: the raw folder (``path``, or
    the folder of the file ``path`` unless ``is_dir``), then ``--dataset-file <the declared input>``
    when the dataset has a definition file (``dataset_file``: the job's ``input.dataset_file``, a path
    or an empty list).

    Why on this param: Snakemake reruns a finished job whose shell command or recorded static params
    changed (its default ``code`` and ``params`` triggers), and a rerun prepare job would retrain every
    run after it. This param is a function of the job's files, not recorded, so the flag is added here
    and the commands and static params of datasets without a definition file stay as they were."""
    files = [dataset_file] if isinstance(dataset_file, str) else list(dataset_file)
    folder = path if is_dir else os.path.dirname(path)
    return folder + (" " + shlex.join(["--dataset-file", str(files[0])]) if files else "")


def params_file_args(files: list[str]) -> str:
    """``--params-file F`` for the (at most one) tuned ``best.json`` of a run; the rules pass their
    declared input here, which a storage plugin has put under its local prefix."""
    return " ".join(f"--params-file {shlex.quote(str(f))}" for f in files)


def schema_error_path(config: dict[str, Any], schema_path: str) -> str | None:
    """Where in the config the first schema violation is (``resources.train``), for the message:
    Snakemake's own validation error names the offending key but not the object holding it."""
    import jsonschema
    import yaml

    schema = yaml.safe_load(open(schema_path))
    err = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(config))
    if err is None:
        return None
    where = ".".join(str(p) for p in err.absolute_path) or "<top level>"
    return f"config key {where}: {err.message}"


def setup_environment(python: str | None = None, gpu_slots_dir: str | None = None,
                      gpu_jobs_per_device: int | None = None) -> None:
    """Environment the jobs inherit: ``python`` first on PATH; the GPU lock directory and the jobs
    per GPU (read by ``onebp gpu-run``; in the environment, not the command, so changing them never
    makes Snakemake rerun a finished job)."""
    if python:
        os.environ["PATH"] = os.pathsep.join([os.path.dirname(python), os.environ.get("PATH", "")])
    if gpu_slots_dir:
        os.environ["ONEBP_GPU_SLOTS_DIR"] = str(gpu_slots_dir)
    if gpu_jobs_per_device:
        os.environ["ONEBP_GPU_JOBS_PER_DEVICE"] = str(gpu_jobs_per_device)


def _cli_value(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return ",".join(map(str, v))
    if isinstance(v, bool):
        return str(v).lower()
    return str(v)


def _merge(*layers: Mapping[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for layer in layers:
        out.update(layer or {})
    return out


def known_methods() -> list[str] | None:
    try:
        from onebp.methods.registry import method_names
    except ImportError:  # onebp not installed: the trainer reports unknown methods itself
        return None
    return method_names()


def _check_names(config: dict[str, Any]) -> None:
    from onebp.data.catalog import CATALOG

    opts = config["dataset_options"]
    for ds in config["datasets"]:
        custom = any(opts.get(ds, {}).get(k) for k in ("url", "dataset_file"))
        if ds not in CATALOG and not custom:
            raise ConfigError(
                f"datasets: unknown dataset {ds!r}; known: {', '.join(sorted(CATALOG))} "
                f"(or give dataset_options.{ds}.url/sha256/format or dataset_file)"
            )
    # A dataset name keyed under dataset_options, method_params.<m>, method_resources.<m> or
    # bench.datasets must be one this config runs, a catalog dataset or one dataset_options defines (a
    # url or dataset_file): a misspelt one would otherwise be ignored without a word. Known datasets not
    # run this time stay allowed (a preset lists options for datasets an overlay may narrow away).
    defined = {ds for ds, o in opts.items() if any((o or {}).get(k) for k in ("url", "dataset_file"))}
    known_ds = set(config["datasets"]) | set(CATALOG) | defined
    bench = config.get("bench") or {}
    ds_keys = [("dataset_options", list(opts))]
    ds_keys += [(f"method_params.{m}", [d for d in by_ds if d != "*"])
                for m, by_ds in config["method_params"].items()]
    ds_keys += [(f"method_resources.{m}", [d for d in by_ds if d != "*"])
                for m, by_ds in (config.get("method_resources") or {}).items()]
    ds_keys += [("bench.datasets", bench.get("datasets") or [])]
    for where, names in ds_keys:
        for ds in names:
            if ds not in known_ds:
                raise ConfigError(f"{where}: unknown dataset {ds!r}; not in datasets {config['datasets']} nor the "
                                  f"catalog ({', '.join(sorted(CATALOG))})")
    known = known_methods()
    if known is not None:
        # Options of a dataset this config does not run (an overlay narrowing `datasets` and `methods`
        # to stage a long study) restrict nothing: only a name no method has is an error there.
        idle = [(f"dataset_options.{ds}.methods", o.get("methods") or []) for ds, o in opts.items()
                if ds not in config["datasets"]]
        for where, names in [("methods", config["methods"])] + [
            (f"sweeps[{i}].methods", s.get("methods") or []) for i, s in enumerate(config["sweeps"])
        ] + [("method_params", list(config["method_params"])),
             ("method_resources", list(config.get("method_resources") or {})),
             ("bench.methods", list(bench.get("methods") or []))] + idle:
            for m in names:
                if m not in known:
                    raise ConfigError(f"{where}: unknown method {m!r}; known: {', '.join(known)}")
    for ds, o in opts.items():
        if ds not in config["datasets"]:
            continue
        for key in ("methods", "protocols"):
            for name in o.get(key) or []:
                if name not in config[key]:
                    raise ConfigError(f"dataset_options.{ds}.{key}: {name!r} is not in {key} {config[key]}")
    for i, s in enumerate(config["sweeps"]):
        for ds in s.get("datasets") or []:
            if ds not in config["datasets"]:
                raise ConfigError(f"sweeps[{i}].datasets: {ds!r} is not in datasets {config['datasets']}")
        for p in s.get("protocols") or []:
            if p not in config["protocols"]:
                raise ConfigError(f"sweeps[{i}].protocols: {p!r} is not in protocols {config['protocols']}")


def _check_report(config: dict[str, Any], evaluated: dict[tuple[str, str], Any]) -> None:
    """What the report jobs are given (workflow/rules/report.smk: tables, figures, claims) must be in
    the results the runs will write; otherwise those jobs fail, or draw and mark nothing, only after
    every run has trained. ``evaluated``: the cut-offs (``ks``) each main (dataset, method) resolves to."""
    rep = config.get("report") or {}
    reference = rep.get("reference")
    known = known_methods()
    if reference is not None and known is not None and reference not in known:
        raise ConfigError(f"report.reference: unknown method {reference!r}; known: {', '.join(known)}")
    if reference is not None and reference not in config["methods"]:
        # A staged run (`--until train` with an overlay naming a few methods) never reaches the report,
        # so this is said, not refused; the report jobs themselves refuse a reference with no rows.
        warnings.warn(f"report.reference: {reference!r} is not in methods {config['methods']}: the report jobs "
                      "(claims, significance markers) will refuse to run; fine for a staged `--until train` run, "
                      "otherwise add it to methods or set report.reference", stacklevel=2)
    try:
        from onebp.config import METRIC_NAMES
    except ImportError:  # onebp not installed: the report commands check the names themselves
        return
    for name in rep.get("metrics") or []:
        if name not in METRIC_NAMES:
            raise ConfigError(f"report.metrics: unknown metric {name!r}; known: {', '.join(METRIC_NAMES)}")
    metric = rep.get("metric")
    if metric is not None and metric.split("@", 1)[0] not in METRIC_NAMES:
        raise ConfigError(f"report.metric: unknown metric {metric!r}; known: <one of {', '.join(METRIC_NAMES)}>@<k>")
    wanted = [("report.ks", int(k)) for k in rep.get("ks") or []]
    if metric is not None and "@" in metric:
        wanted.append(("report.metric", int(metric.split("@", 1)[1])))
    for (ds, method), ks in evaluated.items():
        if ks is None:  # unresolved (onebp not importable): nothing to compare with
            continue
        for where, k in wanted:
            if k not in {int(x) for x in ks}:
                raise ConfigError(f"{where}: cut-off {k} is not evaluated by the runs of {method} on {ds} "
                                  f"(ks {','.join(map(str, ks))}; set params.ks)")


def _check_overrides(where: str, method: str, dataset: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Resolve like ``onebp train`` would, so unknown keys and bad values fail now, not in a job.

    Returns the resolved settings (flat: shared settings and the method's own parameters)."""
    for key in RULE_KEYS:
        if key in overrides:
            raise ConfigError(f"{where}: {key!r} is set by the workflow (seeds/protocols/datasets/resources)")
    return _resolve(where, method, dataset, overrides)


def _resolve(where: str, method: str, dataset: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """``onebp train``'s resolution of ``overrides`` (the overrides themselves where onebp is not importable)."""
    try:
        from onebp.config import resolve_config
        from onebp.errors import UserError
        from onebp.methods.registry import get_method
    except ImportError:
        return dict(overrides)
    try:
        m = get_method(method)
        cfg = resolve_config(m.name, m.params, m.defaults, dataset, {k: _cli_value(v) for k, v in overrides.items()},
                             onebp_update=m.onebp_update)
    except UserError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    resolved = cfg.to_dict()
    return {**resolved.pop("params", {}), **resolved}


def _tune(plan: StudyPlan, dataset: str, method: str, base: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """With tuning: draw the method's trials (once) and drop its tuned keys from ``base`` (they come
    from ``best.json``). Returns the runs' overrides and what their setting id must also hash."""
    if plan.tuning is None:
        return base, {}
    tuning = plan.tuning.methods.get((dataset, method))
    if tuning is None and (dataset, method) not in plan.tuning.untuned:
        try:
            tuning = plan.tuning.add(dataset, method, base, plan.splits[(dataset, "clean")])
        except UserError as exc:
            raise ConfigError(f"tuning ({dataset}/{method}): {exc}") from None
    if tuning is None:
        return base, {}
    return {k: v for k, v in base.items() if k not in tuning.keys}, {"_tuning": tuning.signature}


def _recorded(config_json: str) -> dict[str, Any] | None:
    """A run directory's recorded settings, flat like ``_check_overrides``'s; None when absent or unreadable
    (an unfinished or damaged run is ``onebp train``'s to judge when it resumes)."""
    try:
        with open(config_json, encoding="utf-8") as f:
            cfg = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(cfg, dict):
        return None
    params = cfg.get("params") if isinstance(cfg.get("params"), dict) else {}
    return {**params, **{k: v for k, v in cfg.items() if k != "params"}}


def _differences(expected: dict[str, Any], recorded: dict[str, Any], skip: set[str]) -> list[str]:
    # Not compared: what the rule sets per job, and what is not a result (the resume check's list).
    from onebp.training.checkpoint import NON_RESULT_KEYS

    skip = skip | set(RULE_KEYS) | set(NON_RESULT_KEYS)
    expected = json.loads(json.dumps(expected))  # tuples → lists, as config.json holds them
    return [f"{k}={recorded.get(k)!r} (the plan now resolves {v!r})" for k, v in sorted(expected.items())
            if k not in skip and recorded.get(k) != v]


def stale_runs(plan: StudyPlan, root: str = ".") -> list[str]:
    """Run and trial directories already under ``root`` whose ``config.json`` records settings other than
    those the plan resolves for them now.

    A run's directory is named by the hash of the workflow's overrides (and the data), not of the
    method's own defaults: when a default changes (``baselines/ease.py``'s λ for a dataset, say) the
    planned path stays the same, Snakemake sees its outputs and keeps them, and the old run would pass
    for the new setting. Tuned keys are left out (they come from ``best.json``). One line per stale
    directory: its path and the first differing key."""
    out: list[str] = []
    for run in plan.runs:
        path = os.path.join(root, run.run_dir, "config.json")
        recorded = _recorded(path) if os.path.exists(path) else None
        if recorded is None:
            continue
        tuned = set(plan.tuning.keys_of(run.dataset, run.method)) if plan.tuning else set()
        diff = _differences(plan.resolved(run.dataset, run.method, run.setting), recorded, tuned)
        if diff:
            out.append(f"{run.run_dir}: ran with {diff[0]}")
    for (dataset, method), tuning in (plan.tuning.methods.items() if plan.tuning else ()):
        for trial, overrides in tuning.trials:
            run_dir = f"{plan.tuning.directory(dataset, method)}/trials/{trial}"
            path = os.path.join(root, run_dir, "config.json")
            recorded = _recorded(path) if os.path.exists(path) else None
            if recorded is None:
                continue
            expected = _resolve(run_dir, method, dataset, {k: v for k, v in overrides.items()
                                                           if k not in tuning_plan.TRIAL_RULE_KEYS})
            diff = _differences(expected, recorded, set())
            if diff:
                out.append(f"{run_dir}: ran with {diff[0]}")
    return out


def _check_gpu_slots(config: dict[str, Any]) -> None:
    """A train job's ``gpu`` resource counts GPU *slots*: one device has ``gpu_jobs_per_device`` of
    them (``onebp gpu-run``), so a job may take 0 (CPU) up to that many, all on one device."""
    k = config.get("gpu_jobs_per_device", 1)
    where = [("resources.train.gpu", config["resources"]["train"].get("gpu", 1))]
    where += [(f"dataset_options.{ds}.resources.gpu", o["resources"]["gpu"])
              for ds, o in config["dataset_options"].items() if "gpu" in (o.get("resources") or {})]
    where += [(f"method_resources.{m}.{ds}.gpu", r["gpu"])
              for m, by_ds in (config.get("method_resources") or {}).items() for ds, r in by_ds.items() if "gpu" in r]
    for key, value in where:
        if not 0 <= value <= k:
            raise ConfigError(f"{key}: {value} GPU slots, but a device has gpu_jobs_per_device={k} "
                              f"(a job takes 0 = CPU .. {k} = a whole device)")


def build(config: dict[str, Any]) -> StudyPlan:
    # A private copy without shared sub-objects (a YAML anchor can alias one dict between methods),
    # so nothing here can see one method's values change through another's.
    config = json.loads(json.dumps(config))
    _check_names(config)
    _check_gpu_slots(config)
    plan = StudyPlan(config, tuning=tuning_plan.from_config(config))
    opts = config["dataset_options"]
    evaluated: dict[tuple[str, str], Any] = {}  # (dataset, method) -> the ks its main runs evaluate
    for ds in config["datasets"]:
        o = opts.get(ds, {})
        # A dataset may run a subset of the methods and protocols, untuned (e.g. the official split:
        # OneBP at its authors' settings, protocol paper, for the parity check).
        ds_methods, ds_protocols = o.get("methods") or config["methods"], o.get("protocols") or config["protocols"]
        tuned = plan.tuning is not None and o.get("tuning", True)
        # Tuning selects on validation: it needs the clean split even when only protocol paper runs.
        protocols = ds_protocols + (["clean"] if tuned and "clean" not in ds_protocols else [])
        prep = _merge(config["prepare"], o.get("prepare"))
        source = {k: o.get(k) for k in SOURCE_KEYS if o.get(k) is not None}
        data_hash = setting_hash({"source": source, "prepare": prep})
        for protocol in protocols:
            p = dict(prep)
            if protocol == "paper":
                p["valid_ratio"] = 0.0  # the paper selects on test; it has no validation split
            elif not p.get("valid_ratio"):
                raise ConfigError(f"prepare.valid_ratio (dataset {ds!r}): protocol 'clean' needs a validation split > 0")
            plan.splits[(ds, protocol)] = f"{protocol}-{setting_hash({'source': source, 'prepare': p})}"
            args = []
            for k, v in p.items():
                if v is not None:
                    args += [f"--{k.replace('_', '-')}", _cli_value(v)]
            plan.prepare_args[(ds, protocol)] = args

        for method in ds_methods:
            mp = config["method_params"].get(method, {})
            base = _merge(config["params"], o.get("params"), mp.get("*"), mp.get(ds))
            where = f"params/dataset_options.{ds}.params/method_params.{method}"
            evaluated[(ds, method)] = _check_overrides(where, method, ds, base).get("ks")
            base, tuned_id = _tune(plan, ds, method, base) if tuned else (base, {})
            # The data hash is part of the setting id: a new split means new runs (and new tuning).
            main = setting_id({**base, "_data": data_hash, **tuned_id}, MAIN)
            plan.settings[(ds, method, main)] = base
            for protocol in ds_protocols:
                for seed in config["seeds"]:
                    plan.runs.append(Run(ds, method, main, protocol, int(seed)))

    for i, s in enumerate(config["sweeps"]):
        param = s["param"]
        if param not in plan.sweep_params:
            plan.sweep_params.append(param)
        # A dataset with its own methods list is swept only where a sweep names it.
        for ds in s.get("datasets") or [d for d in config["datasets"] if not opts.get(d, {}).get("methods")]:
            o = opts.get(ds, {})
            data_hash = setting_hash({"source": {k: o.get(k) for k in SOURCE_KEYS if o.get(k) is not None},
                                      "prepare": _merge(config["prepare"], o.get("prepare"))})
            for method in s.get("methods") or config["methods"]:
                mp = config["method_params"].get(method, {})
                base = _merge(config["params"], o.get("params"), mp.get("*"), mp.get(ds))
                resolved = _check_overrides(f"sweeps[{i}]", method, ds, base)
                base, tuned = _tune(plan, ds, method, base) if o.get("tuning", True) else (base, {})
                for value in s["values"]:
                    if param not in resolved and param not in base:
                        raise ConfigError(f"sweeps[{i}].param: unknown setting {param!r} for method {method!r}")
                    tuned_param = plan.tuning is not None and param in plan.tuning.keys_of(ds, method)
                    if (resolved.get(param, base.get(param)) == value and method in config["methods"]
                            and not tuned_param):  # a tuned value is only known after tuning
                        continue  # the main setting already is this point of the sweep
                    over = {**base, param: value}
                    _check_overrides(f"sweeps[{i}] ({param}={value!r})", method, ds, over)
                    sid = setting_id({**over, "_data": data_hash, **tuned}, sweep_tag(param, value))
                    plan.settings[(ds, method, sid)] = over
                    for protocol in s.get("protocols") or [plan.primary_protocol()]:
                        for seed in s.get("seeds") or config["seeds"]:
                            run = Run(ds, method, sid, protocol, int(seed))
                            if run not in plan.runs:
                                plan.runs.append(run)
    _check_report(config, evaluated)
    return plan
