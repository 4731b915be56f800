# Lint 'Specify a conda environment or container': see the note in workflow/Snakefile.


rule prepare_data:
    output:
        DATA,
    log:
        f"{SHARED_LOGS}/prepare_data/{DATA_ID}.log",
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        config=params(config, "dataset"),
    shell:
        "ganablate prepare-data --config-json {params.config:q} --download $GANABLATE_DATA_DOWNLOAD"
        " --out {output} > {log} 2>&1"


rule train_extractor:
    input:
        DATA,
    output:
        DOMAIN_EXTRACTOR,
    log:
        f"{SHARED_LOGS}/train_extractor/{Path(DOMAIN_EXTRACTOR).stem}.log",
    # First of all (runs.smk): every scoring job waits for it and the floors, a training job only for the data.
    priority: 2
    threads: config["eval"]["threads"]
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=execution.gpus(config["eval"]["device"]),
    params:
        config=params(config, "dataset", eval_keys=["extractor_epochs"]),
    shell:
        "ganablate train-extractor --config-json {params.config:q} --data {input}"
        " --device $GANABLATE_EVAL_DEVICE --threads {threads} --out {output} > {log} 2>&1"


rule reference:
    # The real-data floor of each extractor; it also fills torch-fidelity's cache of the test split's
    # statistics, so that no evaluation job computes them again.
    input:
        unpack(floor_inputs),
        data=DATA,
    output:
        FLOOR,
    log:
        f"{SHARED_LOGS}/reference/{Path(FLOOR).stem}.log",
    priority: 2
    threads: config["eval"]["threads"]
    resources:
        mem_mb=6000,
        runtime=60,
        gpu=execution.gpus(config["eval"]["device"]),
    params:
        config=floor_config,
        extractor=lambda wildcards: LABEL_OF[wildcards.extractor],
        domain=domain_arg,
        cache=CACHE,
    shell:
        "ganablate floor --config-json {params.config:q} --data {input.data} --extractor {params.extractor}"
        " {params.domain} --cache-root {params.cache} --device $GANABLATE_EVAL_DEVICE --threads {threads} --out {output} > {log} 2>&1"
