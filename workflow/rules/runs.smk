# Lint 'Specify a conda environment or container': see the note in workflow/Snakefile.

# Training: one job per run, or with train.stack resolving to more than one seed (common.smk's STACK), one job
# per block of seeds of a (feed, norm). Either way each run's folder holds the same files, which is all that
# evaluation and everything after it read.
if STACK == 1:

    rule train:
        input:
            DATA,
        output:
            checkpoints=directory(f"{RUN}/checkpoints"),
            log=f"{RUN}/train_log.csv",
            summary=f"{RUN}/summary.json",
        params:
            config=sections("dataset", "model", "train"),
            run=run_dir,
        log:
            LOGS + "/train/{dataset}/{feed}/{norm}/seed{seed}.log",
        group:
            "run"
        threads: config["train"]["threads"]
        resources:
            mem_mb=2000,
            runtime=10 + config["train"]["steps"] // 50,
            gpu=gpus(config["train"]["device"]),
        shell:
            # A killed job leaves {params.run}/state/, which is no output: the rerun resumes from it.
            "ganablate train --config-json {params.config:q} --data {input} --feed {wildcards.feed}"
            " --norm {wildcards.norm} --seed {wildcards.seed} --device {TRAIN_DEVICE} --threads {threads}"
            " --out {params.run} > {log} 2>&1"

else:
    # One rule per block of seeds (a rule's outputs are fixed paths but for wildcards, and a block's seeds cannot
    # be read from one run's path): each writes every run folder of its block, for any dataset, feed and norm.
    # The block's seeds are params: another composition of the stacks reruns training (a stack's runs differ
    # from solo runs by float rounding, so its seeds are part of each run's config_hash). Not in the group `run`:
    # a stack is one cluster job of its own, with one GPU when train.device is cuda, whatever its size.
    for _block in SEED_BLOCKS:

        rule:
            name:
                "train_stack_" + block_name(_block)
            input:
                DATA,
            output:
                checkpoints=[directory(path) for path in block_outputs(_block, "checkpoints")],
                log=block_outputs(_block, "train_log.csv"),
                summary=block_outputs(_block, "summary.json"),
            params:
                config=sections("dataset", "model", "train"),
                seeds=",".join(map(str, _block)),
                root=runs_root,
            log:
                f"{LOGS}/train/{{dataset}}/{{feed}}/{{norm}}/stack-{'-'.join(map(str, _block))}.log",
            threads: config["train"]["threads"]
            resources:
                mem_mb=2000 + 250 * len(_block),
                # A CPU trains the seeds of a stack at about a solo run's rate each; a GPU the whole stack at least at
                # a CPU's solo rate (benchmarks/run.py --device cuda measures it).
                runtime=10 + (1 if config["train"]["device"] == "cuda" else len(_block)) * config["train"]["steps"] // 50,
                gpu=gpus(config["train"]["device"]),
            shell:
                # A killed job leaves <variant>/stack-<seeds>/state.pt, which is no output: the rerun resumes from it.
                (
                    "ganablate train --config-json {params.config:q} --data {input} --feed {wildcards.feed}"
                    f" --norm {{wildcards.norm}} --seeds {{params.seeds}} --stack {len(_block)}"
                    " --device {TRAIN_DEVICE} --threads {threads} --out-root {params.root} > {log} 2>&1"
                )


rule evaluate:
    input:
        unpack(extractor_inputs),
        checkpoints=f"{RUN}/checkpoints",
        summary=f"{RUN}/summary.json",
        data=DATA,
        # The floors only order the jobs (they warm the reference cache): their content is not read here.
        floors=ancient(expand(FLOOR.replace("{dataset}", "{{dataset}}"), extractor=EXTRACTORS)),
    output:
        metrics=f"{RUN}/metrics.csv",
        samples=report(
            directory(f"{RUN}/samples"),
            patterns=["{name}.png"],
            category="samples",
            subcategory="{feed} / {norm}",
            labels={"feed": "{feed}", "norm": "{norm}", "seed": "{seed}"},
            caption="../report/samples.rst",
        ),
    params:
        config=sections("dataset", "model", "train", "eval"),
        run=run_dir,
        domain=lambda wc, input: f"--domain-extractor {input.domain_extractor}" if "domain_extractor" in input.keys() else "",
    log:
        LOGS + "/evaluate/{dataset}/{feed}/{norm}/seed{seed}.log",
    group:
        "run"
    threads: config["eval"]["threads"]
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=gpus(config["eval"]["device"]),
    shell:
        "ganablate evaluate --config-json {params.config:q} --run {params.run} --data {input.data} {params.domain}"
        " --cache-root {CACHE} --device {EVAL_DEVICE} --threads {threads} > {log} 2>&1"
