"""The study configuration: YAML read safely, validated against the one schema the workflow also uses."""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import jsonschema
import yaml

from ganablate.errors import ConfigError, DesignError

if TYPE_CHECKING:
    from ganablate.study.design import Design


def schema() -> dict:
    """The config schema, the one the workflow validates with too (package data, linked from workflow/schemas/), its
    `x-registry` nodes given the enum of their registry's names (catalog.py; for metrics, those with a direction),
    so that a new metric or dataset is one entry in its registry and nowhere else."""
    from ganablate.catalog import compared_metrics, names

    spec = yaml.safe_load(files("ganablate").joinpath("config.schema.yaml").read_text())
    registries = ("datasets", "kinds", "hypotheses", "spending")
    enums = {"metrics": list(compared_metrics())} | {registry: list(names(registry)) for registry in registries}

    def fill(node):
        if isinstance(node, dict):
            if "x-registry" in node:
                node["enum"] = enums[node["x-registry"]]
            for value in node.values():
                fill(value)
        elif isinstance(node, list):
            for value in node:
                fill(value)

    fill(spec)
    return spec


# Keys that came after studies were launched, whose default is what every earlier run computed: a run's identity
# (study/identity.py), the plan (study/plan.py) and the workflow's params hold one only where it differs from its
# default, so that the committed studies keep their plan hashes, their runs their config_hash, and their finished
# jobs are not rerun.
LATER_KEYS = {"model": ("arch",), "train": ("loss", "gp_weight")}


@functools.cache
def _later_defaults() -> dict[str, dict]:
    properties = schema()["properties"]
    return {
        section: {key: properties[section]["properties"][key]["default"] for key in keys}
        for section, keys in LATER_KEYS.items()
    }


def recorded(section: str, values: dict) -> dict:
    """A config section as runs and plans record it: LATER_KEYS at their defaults left out."""
    defaults = _later_defaults().get(section, {})
    return {key: value for key, value in values.items() if key not in defaults or value != defaults[key]}


def _with_defaults(validator_class):
    # jsonschema validates but never fills defaults; extending the 'properties' keyword is the
    # documented way to do so (it is also what snakemake.utils.validate does).
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if "default" in sub and key not in instance:
                    instance[key] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


# The most values (mappings, lists and scalars) a config may hold; a study's holds a few hundred. A YAML alias
# repeats what it names without copying it: nine aliases of nine aliases ... are ten lines that expand to 9^9
# values, which anything that walks every value (jsonschema, whose messages print the value they refuse) would
# take minutes and gigabytes to visit. Counted with a bound, they are refused at once.
MAX_VALUES = 100_000


def _key(path) -> str:
    """A key path as one line: a key with a newline or another unprintable character is quoted."""
    return ".".join(str(p) if str(p).isprintable() else repr(p) for p in path) or "(top level)"


def _check_values(config, source: str) -> None:
    """At most MAX_VALUES values, every number finite: else ConfigError naming the key path. jsonschema's
    `exclusiveMinimum: 0` is false for NaN, and .inf passes every lower bound, so they are refused here, anywhere."""
    count, todo = 0, [((), config)]
    while todo:
        path, value = todo.pop()
        count += 1
        if count > MAX_VALUES:
            raise ConfigError(
                f"{source}: {_key(path)}: the config holds more than {MAX_VALUES} values (YAML aliases repeat "
                f"what they name); allowed: up to {MAX_VALUES}, a study's config holds a few hundred"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{source}: {_key(path)}: {value} is not finite; allowed: a finite number")
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        todo += reversed([((*path, k), v) for k, v in items])  # depth first, in the file's order


def _message(error: jsonschema.exceptions.ValidationError) -> str:
    """jsonschema's message, with why a bound is where it is (the schema's `x-why`), shortened where it prints a
    long value it refuses (a list of 20000 seeds)."""
    message = error.message
    if len(message) > 1000:
        message = f"{message[:500]} ... {message[-300:]}"
    why = error.schema.get("x-why") if error.validator in ("maximum", "maxItems") else None
    return f"{message} ({why})" if why else message


class Checked(NamedTuple):
    """A config validated: with every default filled in; where it holds a study, its design and each of the design's
    cells' config (the cell's levels applied, checked), keyed by the cell's labels in the axes' order."""

    config: dict
    design: Design | None
    cells: dict[tuple[str, ...], dict]


def validate_config(config: dict | None, source: str = "config", whole: bool = True) -> dict:
    """Return a validated copy of `config` with every default filled in, or raise ConfigError (check_config)."""
    return check_config(config, source, whole).config


def check_config(config: dict | None, source: str = "config", whole: bool = True) -> Checked:
    """`config` validated, or ConfigError naming the key: the schema, the constraints between keys, and for a study
    its axes, every cell and every declared contrast.

    whole=False: `config` holds only the sections one step needs (the workflow's --config-json, after the
    Snakefile checked the whole config); constraints between sections then apply only to the sections given."""
    _check_values(config, source)  # before anything walks every value
    config = copy.deepcopy(config) if config is not None else {}
    given = set(config) if isinstance(config, dict) else set()
    spec = schema()
    validator = _with_defaults(jsonschema.validators.validator_for(spec))(spec)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is not None:
        raise ConfigError(f"{source}: {_key(error.absolute_path)}: {_message(error)}")
    _check_consistency(config, source, given if not whole else None)
    if whole or {"study", "stats", "model", "train"} <= given:
        return Checked(config, *_check_design(config, source, validator))
    return Checked(config, None, {})


def stacked_penalty(loss: str, seeds: int) -> str:
    """The error of a stack of seeds under a loss with a gradient penalty (losses.gradient_penalty)."""
    return (
        f"train.stack: {seeds} seeds in one stack with train.loss={loss}; allowed: 1 (its gradient penalty takes a "
        f"gradient within D's step, which a stack's vmap cannot)"
    )


def _check_cell_model(model: dict, train: dict, where: str, archs: list[str]) -> None:
    """A cell's architecture (one of `archs`) and loss, which an axis may set, are registry names, a loss with a
    gradient penalty is trained solo, and ghost_mixed has its chunk: else the first D of such a cell stops its run."""
    from ganablate.catalog import entries

    if model["d_norm"] == "ghost_mixed" and model["ghost_chunk"] is None:
        raise DesignError(
            f"model.ghost_chunk: null{where} of norm ghost_mixed; allowed: a divisor of train.batch_size "
            f"(ghost_mixed's chunks have a fixed size)"
        )
    if model["arch"] not in archs:
        raise DesignError(f"model.arch: unknown {model['arch']!r}{where}; allowed: {', '.join(archs)}")
    losses = entries("losses")
    if train["loss"] not in losses:
        raise DesignError(f"train.loss: unknown {train['loss']!r}{where}; allowed: {', '.join(losses)}")
    if "penalty" in losses[train["loss"]].code and isinstance(train["stack"], int) and train["stack"] > 1:
        raise DesignError(stacked_penalty(train["loss"], train["stack"]))


def _check_design(config: dict, source: str, validator) -> tuple[Design, dict[tuple[str, ...], dict]]:
    """The axes, the cells and every declared contrast name keys, levels and values that exist: checked here, before
    any job, as one line naming the key. Returns the design and each cell's config, its levels applied: the one place
    a study's cells are applied (the workflow's jobs take their params from them)."""
    from ganablate.catalog import names
    from ganablate.components import architectures
    from ganablate.study import contrasts, looks
    from ganablate.study import design as design_module

    archs = architectures.names()  # the installed packages' entry points, read once
    for field, value, known in (
        ("train.feed", config["train"]["feed"], names("feeds")),
        ("model.d_norm", config["model"]["d_norm"], names("norms")),
        ("model.arch", config["model"]["arch"], archs),
        ("train.loss", config["train"]["loss"], names("losses")),
    ):
        if value not in known:
            raise ConfigError(f"{source}: {field}: unknown {value!r}; allowed: {', '.join(known)}")

    def schema_check(section: str, values: dict) -> str | None:
        error = jsonschema.exceptions.best_match(validator.iter_errors({section: copy.deepcopy(values)}))
        return None if error is None else _message(error)

    try:
        design = design_module.design_of(config, schema_check)
        cells = {}
        for labels in design.cells:
            cell = design_module.run_config(config, design.cell(labels), design)
            _check_cell_model(cell["model"], cell["train"], f" in the cell {design.cell(labels)}", archs)
            # a cell's levels together (a batch size and a ghost chunk): else its job's first step would fail
            _check_consistency(cell, f"{source}: the cell {design.cell(labels)}")
            cells[labels] = cell
        contrasts.declared_all(design, config["stats"])
        looks.check(config["study"]["seeds"], config["stats"])
        mechanism = config["stats"]["mechanism"]
        if mechanism is not None:
            spec = {
                "compare": {mechanism["axis"]: mechanism["broken"]},
                "against": {mechanism["axis"]: mechanism["reference"]},
            }
            contrasts.declared_contrasts(
                design, [spec, spec | {"compare": {mechanism["axis"]: mechanism["repaired"]}}], "stats.mechanism"
            )
        if config["stats"]["remedies"] is not None:
            _check_remedies(design, config["stats"]["remedies"])
    except DesignError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return design, cells


def _check_remedies(design, remedies: dict) -> None:
    """stats.remedies names two different axes of the design: on `axis` a reference level and at least one other (a
    remedy), on `feed_axis` two different levels, working and broken. DesignError names the key."""
    from ganablate.study.design import label_of

    axes = {a.name: a for a in design.axes}
    for key in ("axis", "feed_axis"):
        if remedies[key] not in axes:
            raise DesignError(f"stats.remedies.{key}: unknown axis {remedies[key]!r}; allowed: {', '.join(axes)}")
    axis, feed_axis = axes[remedies["axis"]], axes[remedies["feed_axis"]]
    if axis is feed_axis:
        raise DesignError(f"stats.remedies.feed_axis: {axis.name} is also stats.remedies.axis; allowed: another axis")
    for key, on in (("reference", axis), ("working", feed_axis), ("broken", feed_axis)):
        if label_of(remedies[key]) not in on.labels:
            raise DesignError(
                f"stats.remedies.{key}: {label_of(remedies[key])!r} is not a level of {on.name}; "
                f"allowed: {', '.join(on.labels)}"
            )
    if label_of(remedies["working"]) == label_of(remedies["broken"]):
        raise DesignError(f"stats.remedies.broken: the working level; allowed: another level of {feed_axis.name}")
    if len(axis.labels) < 2:
        raise DesignError(
            f"stats.remedies.axis: {axis.name} has no level but the reference; allowed: an axis of remedies"
        )


def _check_consistency(config: dict, source: str, given: set[str] | None = None) -> None:
    """Constraints between keys, checked before any job runs instead of failing the job that meets them.
    given: the sections a partial config holds (None: the whole config); others are schema defaults."""

    def has(*sections: str) -> bool:
        return given is None or set(sections) <= given

    train, ev, stats, dataset = (config[k] for k in ("train", "eval", "stats", "dataset"))
    beyond = sorted(s for s in train["checkpoints"] if s > train["steps"])
    if beyond:
        raise ConfigError(
            f"{source}: train.checkpoints: step {beyond[0]} is beyond train.steps={train['steps']}; "
            f"allowed: steps from 1 to {train['steps']}"
        )
    if has("stats", "eval") and stats["primary_extractor"] not in ev["extractors"]:
        raise ConfigError(  # else the stats step finds no rows of it in runs.csv, after every run was scored
            f"{source}: stats.primary_extractor: {stats['primary_extractor']} is not in eval.extractors; "
            f"allowed: {', '.join(ev['extractors'])} (or add it to eval.extractors)"
        )
    read_everywhere = [m for m in (stats["primary_metric"], stats["secondary_metric"]) if m in ev["final_only"]]
    if has("stats", "eval") and read_everywhere:
        raise ConfigError(  # else the trend over training and the tables find no rows of it at earlier checkpoints
            f"{source}: eval.final_only: {read_everywhere[0]} is stats' primary or secondary metric, read at every "
            f"checkpoint; allowed: the other metrics"
        )
    chunk = config["model"]["ghost_chunk"]
    if has("model", "train") and chunk is not None and train["batch_size"] % chunk:
        raise ConfigError(  # else the ghost norm stops the run at its first step
            f"{source}: model.ghost_chunk: {chunk} does not divide train.batch_size={train['batch_size']}; "
            f"allowed: a divisor of the batch size, or null for one chunk per source"
        )
    if dataset["name"] == "imagefolder" and not dataset["root"]:
        raise ConfigError(  # it has no system copy and no download: the data job would fail
            f"{source}: dataset.root: imagefolder needs dataset.root set to a folder of class subfolders of images"
        )
    weights = ev["inception_weights"]
    if "inception-v3-compat" in ev["extractors"] and weights and not Path(weights).is_file():
        raise ConfigError(  # else the reference job fails, while the training jobs run
            f"{source}: eval.inception_weights: {weights}: no such file (inception-v3-compat in eval.extractors "
            f"reads it); set it to torch-fidelity's weights file, or to null to use the torch hub cache"
        )


# The top-level key that makes YTE (which snakemake reads every --configfile through) evaluate the file's Python.
YTE_KEY = "__use_yte__"


def read_config_file(path: str | Path) -> dict | None:
    """A config file's mapping of sections as yaml.safe_load reads it (which runs nothing), not yet validated;
    ConfigError, one line naming the file, for a file that is unreadable, not UTF-8, not YAML, or a YTE template."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
            f"allowed: a YAML file in UTF-8"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid YAML (nested too deeply); allowed: a few levels of sections") from None
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{path}: (top level): expected a mapping of sections, got {type(raw).__name__}")
    if raw is not None:
        _check_values(raw, str(path))  # before anything (snakemake's update_config too) walks an alias bomb
    if raw is not None and YTE_KEY in raw:
        raise ConfigError(
            f"{path}: {YTE_KEY}: a YTE template, whose Python `snakemake --configfile` evaluates before the workflow "
            f"runs; allowed: plain YAML, given to the workflow as `--config study_file={path}` (read with "
            f"yaml.safe_load, which evaluates nothing)"
        )
    return raw


def load_config(path: str | Path) -> dict:
    return validate_config(read_config_file(path), source=str(path))


def checkpoint_steps(train: dict) -> list[int]:
    """The steps at which a run saves G: train.checkpoints and, always, the last step."""
    return sorted(set(train["checkpoints"]) | {train["steps"]})


def config_hash(section: dict) -> str:
    """A stable short hash of a config section, recorded with results so that a changed setting is visible."""
    return hashlib.sha256(json.dumps(section, sort_keys=True).encode()).hexdigest()[:16]
