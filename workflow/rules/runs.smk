# Lint 'Specify a conda environment or container': see the note in workflow/Snakefile.


# The plan, frozen when the study launches: written once, before any training job, and never rewritten (no params:
# the config reaches the command in an environment variable, which no rerun trigger sees). Each run records its hash;
# `ganablate stats` says "plan changed after launch" when the config's plan differs from the runs' hash.
rule plan:
    output:
        PLAN,
    log:
        f"{LOGS}/plan.log",
    shell:
        'ganablate plan --config-json "$GANABLATE_PLAN_CONFIG" --out {output} > {log} 2>&1'


# A run: with solo runs (STACK 1), one job per run trains and scores it in one process (`ganablate run` is
# `ganablate train` then `ganablate evaluate`, the same files to the byte); with train.runs_per_job above 1 (BLOCK),
# one job trains a block of a cell's runs and another scores them. With train.stack resolving to more than one seed
# (common.smk's STACK), one training job per block of seeds of a cell and one scoring job per run. Either way each
# run's folder holds the same files, which is all that everything after it reads. Each job gets the sections of its
# cell's config: a level's value is in them. An edit of the eval section reruns the jobs that score; a run job's
# training then resumes from the run's last state (state/, no output, kept), not from step 0: so does a killed
# job's rerun.
# Every scoring job's order after the floors (they warm the reference cache): their content is not read there.
AFTER_FLOORS = ancient(FLOORS)

if STACK == 1 and BLOCK == 1:

    rule run:
        input:
            unpack(extractor_inputs),
            data=DATA,
            # Only the order: a plan edited later does not retrain (stats reports the change instead).
            plan=ancient(PLAN),
            floors=AFTER_FLOORS,
        output:
            checkpoints=directory(f"{RUN}/checkpoints"),
            log=f"{RUN}/train_log.csv",
            summary=f"{RUN}/summary.json",
            metrics=f"{RUN}/metrics.csv",
            samples=samples_report(f"{RUN}/samples"),
        log:
            f"{LOGS}/run/{{dataset}}/{CELL}/seed{{seed}}.log",
        group:
            # profiles/slurm packs several runs into one cluster job (group-components)
            "run"
        threads: max(config["train"]["threads"], config["eval"]["threads"])
        resources:
            mem_mb=4000,
            runtime=train_minutes(1) + 30,
            gpu=max(gpus(config["train"]["device"]), gpus(config["eval"]["device"])),
        params:
            config=cell_sections("dataset", "model", "train", "eval"),
            cell=cell_arg,
            run=run_dir,
            domain=domain_arg,
            cache=CACHE,
        shell:
            "ganablate run --config-json {params.config:q} --data {input.data} --plan {input.plan}"
            " --cell {params.cell} --seed {wildcards.seed} --out {params.run} {params.domain} --cache-root {params.cache}"
            # Each phase its configured threads, capped as snakemake caps {threads} (at --cores).
            " --device $GANABLATE_TRAIN_DEVICE --threads $(( {threads} < $GANABLATE_TRAIN_THREADS ? {threads} : $GANABLATE_TRAIN_THREADS ))"
            " --eval-device $GANABLATE_EVAL_DEVICE --eval-threads $(( {threads} < $GANABLATE_EVAL_THREADS ? {threads} : $GANABLATE_EVAL_THREADS ))"
            " > {log} 2>&1"

elif STACK == 1:
    # train.runs_per_job of a cell's runs per block: one job trains them one after another, another scores them
    # with one Scoring (the same files as one job per run, to the byte). Apart, so that training waits only for
    # the data: it runs beside the extractor's training and the floors, which only scoring needs. Training goes
    # before scoring (priority; the shared chain before both, reference.smk): a block's training takes about three
    # times its scoring, so the study ends on short scoring jobs, not on a last block still training.
    for _block in SEED_BLOCKS:

        rule:
            name:
                f"train_{block_name(_block)}"
            input:
                data=DATA,
                plan=ancient(PLAN),
            output:
                checkpoints=[
                    directory(path) for path in block_outputs(_block, "checkpoints")
                ],
                log=block_outputs(_block, "train_log.csv"),
                summary=block_outputs(_block, "summary.json"),
            log:
                f"{LOGS}/train/{{dataset}}/{CELL}/seeds-{'-'.join(map(str, _block))}.log",
            priority: 1
            group:
                "run"
            threads: config["train"]["threads"]
            resources:
                mem_mb=stack_memory(1),
                runtime=len(_block) * train_minutes(1),  # one run after another, on a GPU too
                gpu=gpus(config["train"]["device"]),
            params:
                config=cell_sections("dataset", "model", "train"),
                cell=cell_arg,
                seeds=",".join(map(str, _block)),
                root=runs_root,
            shell:
                # A killed job leaves the state/ of the run it was in, which is no output: the rerun resumes it.
                "ganablate train --config-json {params.config:q} --data {input.data} --plan {input.plan}"
                " --cell {params.cell} --seeds {params.seeds} --stack 1"
                " --device $GANABLATE_TRAIN_DEVICE --threads {threads} --out-root {params.root} > {log} 2>&1"

        rule:
            name:
                f"evaluate_{block_name(_block)}"
            input:
                unpack(extractor_inputs),
                floors=AFTER_FLOORS,
                checkpoints=block_outputs(_block, "checkpoints"),
                summary=block_outputs(_block, "summary.json"),
                data=DATA,
            output:
                metrics=block_outputs(_block, "metrics.csv"),
                samples=[
                    samples_report(path, seed)
                    for path, seed in zip(block_outputs(_block, "samples"), _block)
                ],
            log:
                f"{LOGS}/evaluate/{{dataset}}/{CELL}/seeds-{'-'.join(map(str, _block))}.log",
            group:
                "run"
            threads: config["eval"]["threads"]
            resources:
                mem_mb=4000,
                runtime=10 + 10 * len(_block),
                gpu=gpus(config["eval"]["device"]),
            params:
                config=cell_sections("dataset", "model", "train", "eval"),
                runs=run_dirs,
                domain=domain_arg,
                cache=CACHE,
            shell:
                "ganablate evaluate --config-json {params.config:q} --run {params.runs:q} --data {input.data}"
                " {params.domain} --cache-root {params.cache} --device $GANABLATE_EVAL_DEVICE --threads {threads}"
                " > {log} 2>&1"

else:
    # One rule per block of seeds (a rule's outputs are fixed paths but for wildcards, and a block's seeds cannot
    # be read from one run's path): each writes every run folder of its block, for any dataset and cell.
    # The block's seeds are params: another composition of the stacks reruns training (a stack's runs differ
    # from solo runs by float rounding, so its seeds are part of each run's config_hash). Not in the group `run`:
    # a stack is one cluster job of its own, with one GPU when train.device is cuda, whatever its size.
    for _block in SEED_BLOCKS:

        rule:
            name:
                f"train_stack_{block_name(_block)}"
            input:
                data=DATA,
                plan=ancient(PLAN),
            output:
                checkpoints=[
                    directory(path) for path in block_outputs(_block, "checkpoints")
                ],
                log=block_outputs(_block, "train_log.csv"),
                summary=block_outputs(_block, "summary.json"),
            log:
                f"{LOGS}/train/{{dataset}}/{CELL}/stack-{'-'.join(map(str, _block))}.log",
            threads: config["train"]["threads"]
            resources:
                mem_mb=stack_memory(len(_block)),
                runtime=train_minutes(len(_block)),
                gpu=gpus(config["train"]["device"]),
            params:
                config=cell_sections("dataset", "model", "train"),
                cell=cell_arg,
                seeds=",".join(map(str, _block)),
                root=runs_root,
            shell:
                # A killed job leaves <variant>/stack-<seeds>/state.pt, which is no output: the rerun resumes from it.
                (
                    "ganablate train --config-json {params.config:q} --data {input.data} --plan {input.plan}"
                    f" --cell {{params.cell}} --seeds {{params.seeds}} --stack {len(_block)}"
                    " --device $GANABLATE_TRAIN_DEVICE --threads {threads} --out-root {params.root} > {log} 2>&1"
                )

    rule evaluate:
        input:
            unpack(extractor_inputs),
            checkpoints=f"{RUN}/checkpoints",
            summary=f"{RUN}/summary.json",
            data=DATA,
            floors=AFTER_FLOORS,
        output:
            metrics=f"{RUN}/metrics.csv",
            samples=samples_report(f"{RUN}/samples"),
        log:
            f"{LOGS}/evaluate/{{dataset}}/{CELL}/seed{{seed}}.log",
        group:
            "run"
        threads: config["eval"]["threads"]
        resources:
            mem_mb=4000,
            runtime=30,
            gpu=gpus(config["eval"]["device"]),
        params:
            config=cell_sections("dataset", "model", "train", "eval"),
            run=run_dir,
            domain=domain_arg,
            cache=CACHE,
        shell:
            "ganablate evaluate --config-json {params.config:q} --run {params.run} --data {input.data} {params.domain}"
            " --cache-root {params.cache} --device $GANABLATE_EVAL_DEVICE --threads {threads} > {log} 2>&1"
