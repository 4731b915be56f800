import json
import os
import re
from pathlib import Path

from ganablate.device import stack_groups, stack_size
from ganablate.study import layout
from ganablate.study.config import recorded
from ganablate.study.design import design_of, run_config
from ganablate.study.outputs import FIGURES as FIGURE_NAMES
from ganablate.study.outputs import TABLES as STAT_TABLES

DATASET = config["dataset"]["name"]
# The study's design: its axes (each a wildcard), the cells that run, the seeds.
DESIGN = design_of(config)
AXES = DESIGN.names
SEEDS = list(DESIGN.seeds)
EXTRACTORS = config["eval"]["extractors"]

# Shared by every study, named by everything that changes their bytes (study/layout.py; each path below holds its
# job's params).
DATA_ID = layout.data_id(config["dataset"])
DATA = str(layout.data_file(config))
EXTRACTOR_IDS = {
    label: layout.extractor_id(label, config["eval"]) for label in EXTRACTORS
}
LABEL_OF = {id_: label for label, id_ in EXTRACTOR_IDS.items()}
DOMAIN_EXTRACTOR = str(layout.domain_extractor_file(config))
# The reference cache needs no name here: `ganablate floor` and `evaluate` key its files by the test split's and the
# extractor file's bytes (scoring/evaluate.py).
CACHE = "results/cache/fidelity"
FLOOR = layout.floor_file(config)
FLOORS = [layout.floor_file(config, id_) for id_ in EXTRACTOR_IDS.values()]
SHARED_LOGS = "results/logs"
# A study's own folder: its runs, tables, figures, findings and logs.
STUDY = f"results/{config['study']['name']}"
RUNS_ROOT = f"{STUDY}/runs"
# A cell's folders in the axes' declared order: <axis>~{<axis>}/...
CELL = str(Path(*(f"{axis}~{{{axis}}}" for axis in AXES)))
RUN = f"{RUNS_ROOT}/{{dataset}}/{CELL}/seed{{seed}}"
CELLS = [DESIGN.cell(labels) for labels in DESIGN.cells]
RUNS = [
    f"{RUNS_ROOT}/{DATASET}/{DESIGN.run_path(cell, seed)}"
    for cell in CELLS
    for seed in SEEDS
]
TABLES = f"{STUDY}/tables"
FIGURES = f"{STUDY}/figures"
LOGS = f"{STUDY}/logs"
# Frozen when the study launches: every training job waits for it and records its hash (study/plan.py).
PLAN = f"{STUDY}/plan.json"


def runs_of(name):
    """A file or folder `name` of every run of the study."""
    return [f"{run}/{name}" for run in RUNS]


def cell_of(wildcards):
    return {axis: wildcards[axis] for axis in AXES}


# Where and how a job executes is no part of what it computes: these keys reach the jobs as resources, threads and
# environment variables, never as params, so moving a finished study to a GPU node or another core count reruns
# nothing. Jobs inherit this process's environment, locally and through SLURM (where the Snakefile is parsed again).
EXECUTION = ("device", "threads", "stack", "runs_per_job")
os.environ.update(
    GANABLATE_TRAIN_DEVICE=config["train"]["device"],
    GANABLATE_EVAL_DEVICE=config["eval"]["device"],
    GANABLATE_TRAIN_THREADS=str(config["train"]["threads"]),
    GANABLATE_EVAL_THREADS=str(config["eval"]["threads"]),
    # How the data is found (layout.ACQUISITION, which sections() drops): the data job's --download.
    GANABLATE_DATA_DOWNLOAD=str(config["dataset"]["download"]).lower(),
)


def sections(*names, eval_keys=None, source=None):
    """The named config sections as compact JSON: a rule's params, so only they trigger its rerun.
    eval_keys narrows the eval section to the keys a rule reads (the rest take schema defaults).
    source: the config to take them from (a cell's own, with its levels applied; default: the study's).
    """
    source = config if source is None else source
    dropped = {"train": EXECUTION, "eval": EXECUTION, "dataset": layout.ACQUISITION}
    chosen = {
        name: recorded(
            name,
            {k: v for k, v in source[name].items() if k not in dropped.get(name, ())},
        )
        for name in names
    }
    if eval_keys is not None:
        chosen["eval"] = {key: source["eval"][key] for key in eval_keys}
    return json.dumps(canonical(chosen), separators=(",", ":"))


def canonical(value, ordered=False):
    """value with every mapping's keys sorted, so that params do not change with the config file's key order;
    except study.axes and an axis's levels given as a mapping, whose order is the design's (run paths, facets, the
    plan frozen at launch) and is kept."""
    if isinstance(value, dict):
        items = value.items() if ordered else sorted(value.items())
        return {
            key: canonical(v, ordered=key in ("axes", "levels")) for key, v in items
        }
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


def cell_sections(*names):
    """A job's params for one cell: the named sections of the config its runs train with, so that editing one
    level of an axis reruns only that level's runs."""
    return lambda wildcards: sections(
        *names, source=run_config(config, cell_of(wildcards), DESIGN)
    )


def cell_arg(wildcards):
    """The cell as `ganablate train --cell` takes it, in the axes' declared order."""
    return ",".join(f"{axis}={wildcards[axis]}" for axis in AXES)


def run_dir(wildcards, output):
    return Path(output[0]).parent


def run_dirs(wildcards, output):
    """The run folders of a job that scores several runs."""
    return [str(Path(path).parent) for path in output.metrics]


def runs_root(wildcards, output):
    """--out-root of a job that writes several run folders: the folder above each one's dataset, cell and seed."""
    return Path(output.summary[0]).parents[len(AXES) + 2]


def table(name, category="tables"):
    return report(
        f"{TABLES}/{name}",
        category=category,
        caption=f"../report/{name.split('.')[0]}.rst",
    )


def figure(name):
    return report(
        f"{FIGURES}/{name}.png",
        category=FIGURE_NAMES[name],
        caption=f"../report/fig_{name}.rst",
    )


def gpus(device):
    # `auto` requests no GPU: it uses one only where the job happens to land on a GPU node.
    return 1 if device == "cuda" else 0


def extractor_inputs(wildcards):
    return {"domain_extractor": DOMAIN_EXTRACTOR} if "domain" in EXTRACTORS else {}


def floor_inputs(wildcards):
    """A floor job's extractor file: the domain extractor's floor only, so that another floor (another study's
    extractor_epochs) never sees its input change."""
    return (
        {"domain_extractor": DOMAIN_EXTRACTOR}
        if LABEL_OF[wildcards.extractor] == "domain"
        else {}
    )


def floor_config(wildcards):
    """A floor job's params: the eval keys it is named by, and an Inception floor's weights."""
    label = LABEL_OF[wildcards.extractor]
    keys = [*layout.FLOOR_KEYS, *([] if label == "domain" else ["inception_weights"])]
    return sections("dataset", eval_keys=keys)


def domain_arg(wildcards, input):
    return (
        f"--domain-extractor {input.domain_extractor}"
        if "domain_extractor" in input.keys()
        else ""
    )


def samples_report(path, seed="{seed}"):
    """A run's sample grids, in the report by cell and seed. seed: the run's seed where the rule writes the runs of a
    block of seeds, whose paths hold them as numbers (block_outputs), not as the wildcard {seed}.
    """
    return report(
        directory(path),
        patterns=["{name}.png"],
        category="samples",
        subcategory=" / ".join(f"{{{axis}}}" for axis in AXES),
        labels={**{axis: f"{{{axis}}}" for axis in AXES}, "seed": str(seed)},
        caption="../report/samples.rst",
    )


# Seeds per training job. STACK 1: runs are solo, train.runs_per_job of them trained by one job and scored by
# another (runs.smk). More: one job per (cell, block of STACK consecutive seeds), as ganablate.device.stack_groups
# blocks them, writing each seed's run folder as a solo run writes it, so that evaluation and everything after it
# are the same. Either way the last block of a cell may hold fewer seeds.
STACK = stack_size(config["train"]["stack"], len(SEEDS), config["train"]["device"])
BLOCK = STACK if STACK > 1 else min(config["train"]["runs_per_job"], len(SEEDS))
SEED_BLOCKS = stack_groups(SEEDS, BLOCK)


def block_name(block):
    """The seeds of a block as the jobs of several runs are named after them (0_1, 3_7_9; 0to9 when three or
    more are consecutive)."""
    if len(block) > 2 and block == list(range(block[0], block[0] + len(block))):
        return f"{block[0]}to{block[-1]}"
    return "_".join(map(str, block))


def block_outputs(block, name):
    """A file or folder `name` of every run of a block of seeds: {dataset} and the axes stay wildcards."""
    return [f"{RUN.replace('{seed}', str(seed))}/{name}" for seed in block]


# The whole config the plan is computed from, for the plan job only (see its rule: no params, so it never reruns).
os.environ.update(
    GANABLATE_PLAN_CONFIG=sections(
        "dataset", "study", "model", "train", "eval", "stats"
    )
)


def train_minutes(seeds_per_job):
    """A training job's runtime request: a CPU trains a stack's seeds at about a solo run's rate each; a GPU the
    whole stack at least at a CPU's solo rate (benchmarks/run.py --device cuda measures it).
    """
    per_run = config["train"]["steps"] // 50
    return 10 + (
        per_run if config["train"]["device"] == "cuda" else seeds_per_job * per_run
    )


def stack_memory(seeds_per_job):
    """A training job's memory request in MB: a base, and a stack's seeds' networks and Adam states."""
    return 2000 + 250 * seeds_per_job
