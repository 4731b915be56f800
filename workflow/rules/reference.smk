# Lint 'Specify a conda environment or container': see the note in workflow/Snakefile.


rule prepare_data:
    output:
        DATA,
    log:
        f"{SHARED_LOGS}/prepare_data.log",
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        config=sections("dataset"),
    shell:
        "ganablate prepare-data --config-json {params.config:q} --out {output} > {log} 2>&1"


rule train_extractor:
    input:
        DATA,
    output:
        DOMAIN_EXTRACTOR,
    log:
        f"{SHARED_LOGS}/train_extractor.log",
    # First of all (runs.smk): every scoring job waits for it and the floors, a training job only for the data.
    priority: 2
    threads: config["eval"]["threads"]
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=gpus(config["eval"]["device"]),
    params:
        config=sections("dataset", eval_keys=["extractor_epochs"]),
    shell:
        "ganablate train-extractor --config-json {params.config:q} --data {input}"
        " --device $GANABLATE_EVAL_DEVICE --threads {threads} --out {output} > {log} 2>&1"


rule reference:
    # The real-data floor of each extractor; it also fills torch-fidelity's cache of the test split's
    # statistics, so that no evaluation job computes them again.
    input:
        unpack(extractor_inputs),
        data=DATA,
    output:
        FLOOR,
    log:
        f"{SHARED_LOGS}/reference/{{dataset}}-{{extractor}}.log",
    priority: 2
    threads: config["eval"]["threads"]
    resources:
        mem_mb=6000,
        runtime=60,
        gpu=gpus(config["eval"]["device"]),
    params:
        config=sections(
            "dataset",
            eval_keys=[
                "inception_weights",
                "kid_subset_size",
                "batch_size",
                "n_samples",
            ],
        ),
        domain=domain_arg,
        cache=CACHE,
    shell:
        "ganablate floor --config-json {params.config:q} --data {input.data} --extractor {wildcards.extractor}"
        " {params.domain} --cache-root {params.cache} --device $GANABLATE_EVAL_DEVICE --threads {threads} --out {output} > {log} 2>&1"
