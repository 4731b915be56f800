"""The files every study shares (the data, the domain extractor, the floors), named once by everything that changes
their bytes: two studies share a file only where it is the same file, so a study never rewrites another's (which
would rerun that finished study) nor, failing, has snakemake delete it. The workflow's paths and the commands'
defaults both read these names. Light (no torch): the workflow imports it."""

from __future__ import annotations

from pathlib import Path

from ganablate.study.config import config_hash, schema

RESULTS = Path("results")
# How the data is found (dataset.download) is no part of what it is: two studies of one dataset share its files.
ACQUISITION = ("download",)
# The eval keys a floor is scored with: N readable in its name (FID's bias depends on it), all of them in a digest.
FLOOR_KEYS = ("n_samples", "kid_subset_size", "batch_size")


def digest(value) -> str:
    """A config value as a file's name holds it: the first 12 hex digits of its config_hash."""
    return config_hash(value)[:12]


def data_id(dataset: dict) -> str:
    """The data's name: the bare dataset name is the dataset as published, found without dataset.root (Debian's
    package and torchvision's download, which checks its files' md5s, hold the one copy); a root may hold any files
    (another version, a subset, the tests' synthetic ones, imagefolder's images), so it and the other keys set away
    from their defaults name the file by their digest."""
    defaults = {key: spec.get("default") for key, spec in schema()["properties"]["dataset"]["properties"].items()}
    keys = {
        key: value for key, value in dataset.items() if key not in ("name", *ACQUISITION) and value != defaults.get(key)
    }
    return f"{dataset['name']}-{digest(keys)}" if keys else dataset["name"]


def data_file(config: dict) -> Path:
    return RESULTS / "data" / f"{data_id(config['dataset'])}.pt"


def extractor_id(label: str, eval_cfg: dict) -> str:
    """An extractor as the files made with it are named: the domain extractor by its epochs (the data is in every
    name already), another by a digest of eval.inception_weights where that is set."""
    if label == "domain":
        return f"domain-e{eval_cfg['extractor_epochs']}"
    weights = eval_cfg["inception_weights"]
    return label if weights is None else f"{label}-{digest(weights)}"


def domain_extractor_file(config: dict) -> Path:
    return RESULTS / "reference" / f"{data_id(config['dataset'])}-{extractor_id('domain', config['eval'])}.pt"


def floor_file(config: dict, extractor: str = "{extractor}") -> str:
    """The real-data floor of an extractor (its id; by default the workflow's wildcard), scored at eval.n_samples."""
    eval_cfg = config["eval"]
    keys = digest({key: eval_cfg[key] for key in FLOOR_KEYS})
    name = f"{data_id(config['dataset'])}-{extractor}-floor-n{eval_cfg['n_samples']}-{keys}.json"
    return str(RESULTS / "reference" / name)
