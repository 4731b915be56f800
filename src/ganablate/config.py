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


def validate_config(config: dict | None, source: str = "config") -> dict:
    """Return a validated copy of `config` with every default filled in, or raise ConfigError."""
    config = copy.deepcopy(config) if config is not None else {}
    schema = _schema()
    validator = _with_defaults(jsonschema.validators.validator_for(schema))(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is not None:
        key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        raise ConfigError(f"{source}: {key}: {error.message}")
    _check_consistency(config, source)
    return config


def _check_consistency(config: dict, source: str) -> None:
    train = config["train"]
    beyond = sorted(s for s in train["checkpoints"] if s > train["steps"])
    if beyond:
        raise ConfigError(
            f"{source}: train.checkpoints: step {beyond[0]} is beyond train.steps={train['steps']}; "
            f"allowed: steps from 1 to {train['steps']}"
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


def seeds_of(study: dict) -> list[int]:
    seeds = study["seeds"]
    return list(range(seeds)) if isinstance(seeds, int) else list(seeds)


def checkpoint_steps(train: dict) -> list[int]:
    """The steps at which a run saves G: train.checkpoints and, always, the last step."""
    return sorted(set(train["checkpoints"]) | {train["steps"]})


def config_hash(section: dict) -> str:
    """A stable short hash of a config section, recorded with results so that a changed setting is visible."""
    return hashlib.sha256(json.dumps(section, sort_keys=True).encode()).hexdigest()[:16]
