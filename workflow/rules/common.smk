import json
from pathlib import Path

from ganablate.config import seeds_of
from ganablate.stats import TABLES as _TABLES

DATASET = config["dataset"]["name"]
FEEDS = config["study"]["feeds"]
NORMS = config["study"]["norms"]
SEEDS = seeds_of(config["study"])
EXTRACTORS = config["eval"]["extractors"]

DATA = f"results/data/{DATASET}.pt"
DOMAIN_EXTRACTOR = f"results/reference/{DATASET}-domain.pt"
RUN = "results/runs/{dataset}/{feed}/{norm}/seed{seed}"
RUNS = expand(RUN, dataset=DATASET, feed=FEEDS, norm=NORMS, seed=SEEDS)
TABLES = "results/tables"
FIGURES = "results/figures"
# The tables of `ganablate stats`, with the report category each is shown under.
STAT_TABLES = {name: "diagnostics" if name in ("failures", "power", "context_gap") else "tables" for name in _TABLES}


wildcard_constraints:
    dataset="[a-z0-9-]+",
    feed="|".join(FEEDS),
    norm="|".join(NORMS),
    seed=r"\d+",
    extractor="|".join(EXTRACTORS),


def sections(*names, eval_keys=None):
    """The named config sections as compact JSON: a rule's params, so only they trigger its rerun.
    eval_keys narrows the eval section to the keys a rule reads (the rest take schema defaults)."""
    chosen = {name: config[name] for name in names}
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
