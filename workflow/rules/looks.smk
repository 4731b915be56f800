# A sequential study (study.seeds as {first, block, cap}; study/looks.py): every cell runs the first look's seeds; a
# checkpoint per look (`ganablate interim`) decides the declared contrasts it can and names the cells that run the
# next block; the input functions below walk the decisions, so snakemake schedules one look at a time. A decision is
# written once (protected, with the plan's hash): a kill -9, `snakemake --unlock` and the same command walk the same
# decisions again and reach the same runs. `interim` is a local rule in no group, as a checkpoint must be on SLURM.
# Lint 'Specify a conda environment or container': see the note in workflow/Snakefile.

# common.smk's run_dir is an input function: the package's is run_folder here.
from ganablate.study.design import run_dir as run_folder


localrules:
    interim,


# At launch (plan.json, once written, freezes the boundaries), before any job: looks that cannot reach a verdict are
# refused. The analysis' imports are paid here only when there is no plan yet.
if LOOKS and not Path(PLAN).exists():
    from ganablate.analysis.looks import check_reachable
    from ganablate.study.plan import Plan

    check_reachable(Plan.from_config(config))


def _decision(look):
    """(path, record) of look `look`'s decision; until its checkpoint has run, snakemake schedules it (and the runs
    it reads) and asks again."""
    path = checkpoints.interim.get(look=look).output.decision
    return path, read_json_digested(
        path, "delete the looks folder's files from this look on and run again"
    )


def _runs(cells, seeds):
    return [
        str(run_folder(RUNS_ROOT, config, DESIGN.cell(tuple(labels)), seed))
        for labels in cells
        for seed in seeds
    ]


def look_runs(look):
    """The run folders look `look` reads: every cell's at the first look; after it, those of the cells the look
    before kept running, over every seed so far (their earlier seeds have run)."""
    if look == 0:
        return _runs(DESIGN.cells, LOOKS.new_seeds(0))
    return _runs(
        _decision(look - 1)[1]["active_cells"], LOOKS.seeds[: LOOKS.counts[look]]
    )


def decisions():
    """(path, record) of every look's decision, up to the one that stopped the study."""
    taken = [_decision(0)]
    while not taken[-1][1]["stop"]:
        taken.append(_decision(len(taken)))
    return taken


def ran_runs():
    """Every run folder the study's decisions asked for: the first look's, then each later look's new seeds of the
    cells the look before kept running."""
    return look_runs(0) + [
        run
        for look, (_, decision) in enumerate(decisions()[:-1], start=1)
        for run in _runs(decision["active_cells"], LOOKS.new_seeds(look))
    ]


def final_decision(wildcards):
    """The decision of the look that stopped the study: every look's rows are in it (its history)."""
    return decisions()[-1][0]


def interim_inputs(wildcards):
    look = int(wildcards.look)
    inputs = {
        "plan": PLAN,
        "metrics": [f"{run}/metrics.csv" for run in look_runs(look)],
    }
    if look:
        inputs["previous"] = _decision(look - 1)[0]
    return inputs


checkpoint interim:
    input:
        unpack(interim_inputs),
    output:
        decision=protected(layout.decision_file(config)),
    log:
        f"{LOGS}/interim/look{{look}}.log",
    params:
        runs=lambda w, input: [str(Path(path).parent) for path in input.metrics],
        previous=lambda w, input: (
            f"--previous {input.previous}" if "previous" in input.keys() else ""
        ),
    # The config as the plan job reads it, and no params of it: a decision is never redone for an edited config;
    # `ganablate interim` refuses a config whose plan is not the one frozen at launch instead.
    shell:
        'ganablate interim --config-json "$GANABLATE_PLAN_CONFIG" --plan {input.plan} --look {wildcards.look}'
        " {params.previous} --runs {params.runs} --out {output.decision} > {log} 2>&1"
