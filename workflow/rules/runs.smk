# Lint 'Specify a conda environment or container': see the note in workflow/Snakefile.

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
        device=config["train"]["device"],
    shell:
        # A killed job leaves {params.run}/state/, which is no output: the rerun resumes from it.
        "ganablate train --config-json {params.config:q} --data {input} --feed {wildcards.feed}"
        " --norm {wildcards.norm} --seed {wildcards.seed} --device {resources.device} --threads {threads}"
        " --out {params.run} > {log} 2>&1"


rule evaluate:
    input:
        unpack(extractor_inputs),
        checkpoints=rules.train.output.checkpoints,
        summary=rules.train.output.summary,
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
        device=config["eval"]["device"],
    shell:
        "ganablate evaluate --config-json {params.config:q} --run {params.run} --data {input.data} {params.domain}"
        " --cache-root {CACHE} --device {resources.device} --threads {threads} > {log} 2>&1"
