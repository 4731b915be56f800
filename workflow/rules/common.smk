import os
import re
from pathlib import Path

from ganablate.study import execution, layout
from ganablate.files import read_json_digested
from ganablate.study.design import run_dir
from ganablate.study.job import params
from ganablate.study.looks import looks_of
from ganablate.study.outputs import FIGURES as FIGURE_NAMES
from ganablate.study.outputs import TABLES as STAT_TABLES

DATASET = config["dataset"]["name"]
# The study's design (checked with the config by the Snakefile): its axes (each a wildcard), the cells that run,
# the seeds.
DESIGN = CHECKED.design
AXES = DESIGN.names
SEEDS = list(DESIGN.seeds)
# A sequential study's looks (None: its seeds are fixed): rules/looks.smk.
LOOKS = looks_of(config["study"]["seeds"])
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
CACHE = str(layout.CACHE)
FLOOR = layout.floor_file(config)
FLOORS = [layout.floor_file(config, id_) for id_ in EXTRACTOR_IDS.values()]
SHARED_LOGS = str(layout.SHARED_LOGS)
# A study's own folder: its runs, tables, figures, findings and logs.
STUDY = str(layout.study_dir(config))
RUNS_ROOT = str(layout.runs_root(config))
# A cell's folders in the axes' declared order, <axis>~{<axis>}/..., and a run's below them.
CELL = layout.cell_pattern(AXES)
RUN = layout.run_pattern(config, AXES)
RUNS = [
    str(run_dir(RUNS_ROOT, config, DESIGN.cell(labels), seed))
    for labels in DESIGN.cells
    for seed in SEEDS
]
TABLES = str(layout.tables_dir(config))
FIGURES = str(layout.figures_dir(config))
LOGS = str(layout.logs_dir(config))
# Frozen when the study launches: every training job waits for it and records its hash (study/plan.py).
PLAN = str(layout.plan_file(config))


def runs_of(name):
    """A file or folder `name` of every run of the study: of a sequential one, every run its decisions asked for
    (an input function that walks them, rules/looks.smk)."""
    if LOOKS:
        return lambda wildcards: [f"{run}/{name}" for run in ran_runs()]
    return [f"{run}/{name}" for run in RUNS]


def cell_of(wildcards):
    return {axis: wildcards[axis] for axis in AXES}


# Where and how a job executes is no part of what it computes (study/identity.py's EXECUTION): these keys reach the
# jobs as resources, threads and environment variables, never as params (study/job.py), so moving a finished study
# to a GPU node or another core count reruns nothing. Jobs inherit this process's environment, locally and through
# SLURM (where the Snakefile is parsed again).
os.environ.update(
    GANABLATE_TRAIN_DEVICE=config["train"]["device"],
    GANABLATE_EVAL_DEVICE=config["eval"]["device"],
    GANABLATE_TRAIN_THREADS=str(config["train"]["threads"]),
    GANABLATE_EVAL_THREADS=str(config["eval"]["threads"]),
    # How the data is found (layout.ACQUISITION, which params drop): the data job's --download.
    GANABLATE_DATA_DOWNLOAD=str(config["dataset"]["download"]).lower(),
)


def cell_params(*names):
    """A job's params for one cell: the named sections of the config its runs train with (the cell's levels applied
    when the Snakefile checked the config), so that editing one level of an axis reruns only that level's runs.
    """
    return lambda wildcards: params(
        CHECKED.cells[tuple(wildcards[axis] for axis in AXES)], *names
    )


def cell_arg(wildcards):
    """The cell as `ganablate train --cell` takes it, in the axes' declared order."""
    return ",".join(f"{axis}={wildcards[axis]}" for axis in AXES)


def run_dir(wildcards, output):
    return Path(output[0]).parent


def run_dirs(wildcards, output):
    """The run folders of a job that scores several runs."""
    return [str(Path(path).parent) for path in output.metrics]


def runs_root(wildcards):
    """--out-root of a job that writes several run folders, --runs-root of the figures: the root above each run's
    dataset, cell and seed, spelled by study/layout.py as the runs' paths are."""
    return RUNS_ROOT


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
    return params(config, "dataset", eval_keys=keys)


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


# How the runs are trained (study/execution.py): each solo run by a job that also scores it (SOLO), or each cell's
# seeds in BLOCKS, each trained by one job and scored by another.
BLOCKS = execution.blocks(config)
SOLO = BLOCKS if isinstance(BLOCKS, execution.Solo) else None


def block_outputs(block, name):
    """A file or folder `name` of every run of a block of seeds: {dataset} and the axes stay wildcards."""
    return [f"{RUN.replace('{seed}', str(seed))}/{name}" for seed in block.seeds]


# The whole config the plan is computed from, for the plan job only (see its rule: no params, so it never reruns).
os.environ.update(
    GANABLATE_PLAN_CONFIG=params(
        config, "dataset", "study", "model", "train", "eval", "stats"
    )
)
