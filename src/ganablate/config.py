"""The study configuration: YAML read safely, validated against the one schema the workflow also uses."""

from __future__ import annotations

import copy
import hashlib
import json
from importlib.resources import files
from pathlib import Path

import jsonschema
import yaml


class ConfigError(ValueError):
    """A configuration value outside what the schema allows; the message is one line naming the key path."""


class UsageError(ValueError):
    """Bad command-line input (an argument, a path); reported as one line naming it, exit code 2."""


def _schema() -> dict:
    return yaml.safe_load(files("ganablate").joinpath("config.schema.yaml").read_text())


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


def validate_config(config: dict | None, source: str = "config", whole: bool = True) -> dict:
    """Return a validated copy of `config` with every default filled in, or raise ConfigError.

    whole=False: `config` holds only the sections one step needs (the workflow's --config-json, after the
    Snakefile checked the whole config); constraints between sections then apply only to the sections given."""
    config = copy.deepcopy(config) if config is not None else {}
    given = set(config) if isinstance(config, dict) else set()
    stats = config.get("stats")
    explicit_family = isinstance(stats, dict) and "confirmatory" in stats
    schema = _schema()
    validator = _with_defaults(jsonschema.validators.validator_for(schema))(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is not None:
        key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        raise ConfigError(f"{source}: {key}: {error.message}")
    _check_consistency(config, source, given if not whole else None)
    _check_plan(config, source, explicit_family)
    return config


def _check_plan(config: dict, source: str, explicit_family: bool) -> None:
    """The confirmatory family names comparisons the study runs. The default family (the BatchNorm comparisons)
    keeps those the study runs; a family the user wrote must name only comparisons that exist."""
    study, family = config["study"], config["stats"]["confirmatory"]
    runs = [c for c in family if c["norm"] in study["norms"] and {c["feed"], c["feed_ref"]} <= set(study["feeds"])]
    for i, c in enumerate(family):
        if c["feed"] == c["feed_ref"]:
            raise ConfigError(f"{source}: stats.confirmatory.{i}: compares {c['feed']} with itself; "
                              f"allowed: two different feeds of study.feeds")
        if explicit_family and c not in runs:
            raise ConfigError(
                f"{source}: stats.confirmatory.{i}: {c['norm']}: {c['feed']} vs {c['feed_ref']} is not in the study; "
                f"allowed: norms {', '.join(study['norms'])} and feeds {', '.join(study['feeds'])}")
    config["stats"]["confirmatory"] = runs


def _check_consistency(config: dict, source: str, given: set[str] | None = None) -> None:
    """Constraints between keys, checked before any job runs instead of failing the job that meets them.
    given: the sections a partial config holds (None: the whole config); others are schema defaults."""

    def has(*sections: str) -> bool:
        return given is None or set(sections) <= given

    train, study, ev, stats, dataset = (config[k] for k in ("train", "study", "eval", "stats", "dataset"))
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
    if has("stats", "study") and stats["reference_feed"] not in study["feeds"]:
        raise ConfigError(  # else every feed would be compared with a feed that was never trained
            f"{source}: stats.reference_feed: {stats['reference_feed']} is not in study.feeds; "
            f"allowed: {', '.join(study['feeds'])} (or add it to study.feeds)"
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


def load_config(path: str | Path) -> dict:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{path}: (top level): expected a mapping of sections, got {type(raw).__name__}")
    return validate_config(raw, source=str(path))


def study_dir(config: dict) -> Path:
    """Where a study's own outputs live; data, extractors and reference statistics are shared under results/."""
    return Path("results") / config["study"]["name"]


def seeds_of(study: dict) -> list[int]:
    seeds = study["seeds"]
    return list(range(seeds)) if isinstance(seeds, int) else list(seeds)


def checkpoint_steps(train: dict) -> list[int]:
    """The steps at which a run saves G: train.checkpoints and, always, the last step."""
    return sorted(set(train["checkpoints"]) | {train["steps"]})


def config_hash(section: dict) -> str:
    """A stable short hash of a config section, recorded with results so that a changed setting is visible."""
    return hashlib.sha256(json.dumps(section, sort_keys=True).encode()).hexdigest()[:16]
