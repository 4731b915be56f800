"""Every path of the results, spelled once for the workflow and the commands' defaults: a study's own folder (its
plan, runs, tables, figures, findings, logs), the run layout under it, and the files every study shares (the data,
the domain extractor, the floors, the reference cache). A shared file is named by everything that changes its bytes:
two studies share a file only where it is the same file, so a study never rewrites another's (which would rerun that
finished study) nor, failing, has snakemake delete it. Light (no torch): the workflow imports it."""

from __future__ import annotations

from pathlib import Path

from ganablate.study.config import config_hash, schema
from ganablate.study.design import run_path

RESULTS = Path("results")
# torch-fidelity's cache of the test split's side of the metrics: keyed by the test split's and the extractor file's
# bytes (scoring/evaluate.py), so it needs no name of its own.
CACHE = RESULTS / "cache" / "fidelity"
SHARED_LOGS = RESULTS / "logs"
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


def study_dir(config: dict) -> Path:
    """A study's own folder: its plan, runs, tables, figures, findings and logs."""
    return RESULTS / config["study"]["name"]


def plan_file(config: dict) -> Path:
    """The plan frozen when the study launches (study/plan.py)."""
    return study_dir(config) / "plan.json"


def tables_dir(config: dict) -> Path:
    return study_dir(config) / "tables"


def figures_dir(config: dict) -> Path:
    return study_dir(config) / "figures"


def findings_file(config: dict) -> Path:
    return study_dir(config) / "findings.md"


def logs_dir(config: dict) -> Path:
    return study_dir(config) / "logs"


def decision_file(config: dict, look: int | str = "{look}") -> str:
    """A sequential study's decision at a look (0-based; `ganablate interim`), written once."""
    return str(study_dir(config) / "looks" / f"look{look}.json")


def runs_root(config: dict) -> Path:
    """The root of a study's run folders: <root>/<dataset>/<axis>~<label>/.../seed<S> (run_pattern)."""
    return study_dir(config) / "runs"


def _wildcards(axes: list[str]) -> dict[str, str]:
    return {axis: f"{{{axis}}}" for axis in axes}


def cell_pattern(axes: list[str]) -> str:
    """A cell's folders as the workflow's wildcards spell them: <axis>~{<axis>}/... in the axes' declared order."""
    return run_path(_wildcards(axes), "{seed}").rpartition("/")[0]


def run_pattern(config: dict, axes: list[str]) -> str:
    """A run's folder as the workflow's wildcards spell it: runs_root/{dataset}/<axis>~{<axis>}/.../seed{seed}
    (design.run_path, with wildcards for the labels and the seed)."""
    return f"{runs_root(config)}/{{dataset}}/{run_path(_wildcards(axes), '{seed}')}"
