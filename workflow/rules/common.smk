import json
from pathlib import Path

from ganablate.config import seeds_of
from ganablate.stats import TABLES as _TABLES

DATASET = config["dataset"]["name"]
FEEDS = config["study"]["feeds"]
NORMS = config["study"]["norms"]
SEEDS = seeds_of(config["study"])
EXTRACTORS = config["eval"]["extractors"]

# Shared by every study: what depends on the dataset (and extractor) only.
DATA = f"results/data/{DATASET}.pt"
DOMAIN_EXTRACTOR = f"results/reference/{DATASET}-domain.pt"
CACHE = "results/cache/fidelity"
# The floor is scored at eval.n_samples (FID's bias depends on N): studies scoring at other counts get their own.
FLOOR = "results/reference/{dataset}-{extractor}-floor-n" + str(config["eval"]["n_samples"]) + ".json"
SHARED_LOGS = "results/logs"
# A study's own folder: its runs, tables, figures, findings and logs.
STUDY = f"results/{config['study']['name']}"
RUNS_ROOT = f"{STUDY}/runs"
RUN = RUNS_ROOT + "/{dataset}/{feed}/{norm}/seed{seed}"
RUNS = expand(RUN, dataset=DATASET, feed=FEEDS, norm=NORMS, seed=SEEDS)
TABLES = f"{STUDY}/tables"
FIGURES = f"{STUDY}/figures"
LOGS = f"{STUDY}/logs"
# The tables of `ganablate stats`, with the report category each is shown under.
STAT_TABLES = {name: "diagnostics" if name in ("failures", "power", "context_gap") else "tables" for name in _TABLES}


wildcard_constraints:
    dataset="[a-z0-9-]+",
    feed="|".join(FEEDS),
    norm="|".join(NORMS),
    seed=r"\d+",
    extractor="|".join(EXTRACTORS),


# Where and how a job executes is no part of what it computes: these keys reach the jobs as resources and
# command-line flags, never as params, so moving a finished study to a GPU node or another core count reruns nothing.
EXECUTION = ("device", "threads", "stack")
# Formatted into the shell commands from here: a rule's code trigger sees the command's template, not these values.
TRAIN_DEVICE = config["train"]["device"]
EVAL_DEVICE = config["eval"]["device"]
# How the data is found (dataset.download) is no part of what it is: two studies of one dataset share its files.
ACQUISITION = ("download",)


def sections(*names, eval_keys=None):
    """The named config sections as compact JSON: a rule's params, so only they trigger its rerun.
    eval_keys narrows the eval section to the keys a rule reads (the rest take schema defaults)."""
    dropped = {"train": EXECUTION, "eval": EXECUTION, "dataset": ACQUISITION}
    chosen = {name: {k: v for k, v in config[name].items() if k not in dropped.get(name, ())} for name in names}
    if eval_keys is not None:
        chosen["eval"] = {key: config["eval"][key] for key in eval_keys}
    return json.dumps(chosen, sort_keys=True, separators=(",", ":"))


def run_dir(wildcards, output):
    return Path(output[0]).parent


def table(name, category="tables"):
    return report(f"{TABLES}/{name}", category=category, caption=f"../report/{name.split('.')[0]}.rst")


def figure(name, category="figures"):
    return report(f"{FIGURES}/{name}.png", category=category, caption=f"../report/fig_{name}.rst")


def gpus(device):
    # `auto` requests no GPU: it uses one only where the job happens to land on a GPU node.
    return 1 if device == "cuda" else 0


def extractor_inputs(wildcards):
    return {"domain_extractor": DOMAIN_EXTRACTOR} if "domain" in EXTRACTORS else {}


def stack_size(train, n_seeds):
    """train.stack resolved when the workflow is parsed, as ganablate.train.stack_size resolves it in a job, but
    without importing torch here: `auto` is all of a variant's seeds when train.device is cuda, and one seed
    otherwise (cpu, and device auto, whose device only the node a job lands on knows)."""
    if train["stack"] == "auto":
        return n_seeds if train["device"] == "cuda" else 1
    return max(1, min(train["stack"], n_seeds))


# Seeds per training job. 1: one `train` job per run (runs.smk). More: one job per (feed, norm, block of STACK
# consecutive seeds; the last block may hold fewer), as ganablate.train.stack_groups blocks them, writing each
# seed's run folder as a solo run writes it, so that evaluation and everything after it are the same.
STACK = stack_size(config["train"], len(SEEDS))
SEED_BLOCKS = [SEEDS[i : i + STACK] for i in range(0, len(SEEDS), STACK)]


def block_name(block):
    """A block of seeds in a rule name: 0_1, 3_7_9, or for three or more consecutive seeds 0to9."""
    if len(block) > 2 and block == list(range(block[0], block[0] + len(block))):
        return f"{block[0]}to{block[-1]}"
    return "_".join(map(str, block))


def block_outputs(block, name):
    """A file or folder `name` of every run of a block of seeds: {dataset}, {feed} and {norm} stay wildcards."""
    return [f"{RUN.replace('{seed}', str(seed))}/{name}" for seed in block]


def runs_root(wildcards, output):
    """The root of the run folders that a block's runs are in (`ganablate train --out-root`): RUNS_ROOT."""
    return Path(output.summary[0]).parents[4]
