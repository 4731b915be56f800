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


# A run: solo runs (execution.Solo) each get one job that trains and scores it in one process (`ganablate run` is
# `ganablate train` then `ganablate evaluate`, the same files to the byte). Otherwise a cell's seeds come in blocks
# (execution.blocks): train.runs_per_job solo runs trained one after another, or a stack (train.stack resolving to
# more than one seed); one job trains a block, `--stack` saying how (a block of one seed is a solo run), and its runs
# are scored by one job per block of solo runs, or one per run of a stack. Either way each run's folder holds the
# same files, which is all that everything after it reads. Each job gets the sections of its cell's config: a level's
# value is in them. An edit of the eval section reruns the jobs that score; a run job's training then resumes from
# the run's last state (state/, no output, kept), not from step 0: so does a killed job's rerun.
# Every scoring job's order after the floors (they warm the reference cache): their content is not read there.
AFTER_FLOORS = ancient(FLOORS)

if SOLO:

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
        threads: SOLO.threads
        resources:
            mem_mb=SOLO.mem_mb,
            runtime=SOLO.runtime,
            gpu=SOLO.gpu,
        params:
            config=cell_params("dataset", "model", "train", "eval"),
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

else:
    # One training rule per block of seeds (a rule's outputs are fixed paths but for wildcards, and a block's seeds
    # cannot be read from one run's path): each writes every run folder of its block, for any dataset and cell.
    # The block's seeds are params: another composition of the stacks reruns training (a stack's runs differ from
    # solo runs by float rounding, so its seeds are part of each run's config_hash). Training waits only for the
    # data: it runs beside the extractor's training and the floors, which only scoring needs, and goes before
    # scoring (priority; the shared chain before both, reference.smk), so the study ends on short scoring jobs. A
    # stack is one cluster job of its own (no group), with one GPU when train.device is cuda, whatever its size.
    for _block in BLOCKS:

        rule:
            name:
                f"train_{_block.name}"
            input:
                data=DATA,
                # Only the order: a plan edited later does not retrain (stats reports the change instead).
                plan=ancient(PLAN),
            output:
                checkpoints=[
                    directory(path) for path in block_outputs(_block, "checkpoints")
                ],
                log=block_outputs(_block, "train_log.csv"),
                summary=block_outputs(_block, "summary.json"),
            log:
                f"{LOGS}/train/{{dataset}}/{CELL}/{_block.log_name}.log",
            priority: 1
            group:
                None if _block.stacked else "run"
            threads: _block.threads
            resources:
                mem_mb=_block.mem_mb,
                runtime=_block.runtime,
                gpu=_block.gpu,
            params:
                config=cell_params("dataset", "model", "train"),
                cell=cell_arg,
                seeds=",".join(map(str, _block.seeds)),
                root=runs_root,
            shell:
                # A killed job leaves the state/ of the run it was in, or <cell>/stack-<seeds>/state.pt, which is
                # no output: the rerun resumes from it.
                (
                    "ganablate train --config-json {params.config:q} --data {input.data} --plan {input.plan}"
                    f" --cell {{params.cell}} --seeds {{params.seeds}} --stack {_block.stack}"
                    " --device $GANABLATE_TRAIN_DEVICE --threads {threads} --out-root {params.root} > {log} 2>&1"
                )

        if not _block.stacked:

            # A block of solo runs is scored by one job, with one Scoring (the same files as one job per run).
            rule:
                name:
                    f"evaluate_{_block.name}"
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
                        for path, seed in zip(
                            block_outputs(_block, "samples"), _block.seeds
                        )
                    ],
                log:
                    f"{LOGS}/evaluate/{{dataset}}/{CELL}/{_block.log_name}.log",
                group:
                    "run"
                threads: config["eval"]["threads"]
                resources:
                    mem_mb=4000,
                    runtime=10 + 10 * len(_block.seeds),
                    gpu=execution.gpus(config["eval"]["device"]),
                params:
                    config=cell_params("dataset", "model", "train", "eval"),
                    runs=run_dirs,
                    domain=domain_arg,
                    cache=CACHE,
                shell:
                    "ganablate evaluate --config-json {params.config:q} --run {params.runs:q} --data {input.data}"
                    " {params.domain} --cache-root {params.cache} --device $GANABLATE_EVAL_DEVICE --threads {threads}"
                    " > {log} 2>&1"

    if BLOCKS[0].stacked:

        # A stack's runs are scored one per job.
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
                gpu=execution.gpus(config["eval"]["device"]),
            params:
                config=cell_params("dataset", "model", "train", "eval"),
                run=run_dir,
                domain=domain_arg,
                cache=CACHE,
            shell:
                "ganablate evaluate --config-json {params.config:q} --run {params.run} --data {input.data} {params.domain}"
                " --cache-root {params.cache} --device $GANABLATE_EVAL_DEVICE --threads {threads} > {log} 2>&1"
