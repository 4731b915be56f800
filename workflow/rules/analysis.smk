# Lint 'Specify a conda environment or container': see the note in workflow/Snakefile.

localrules:
    aggregate,
    stats,
    figures,
    findings,


rule aggregate:
    input:
        metrics=expand(f"{RUN}/metrics.csv", dataset=DATASET, feed=FEEDS, norm=NORMS, seed=SEEDS),
        logs=expand(f"{RUN}/train_log.csv", dataset=DATASET, feed=FEEDS, norm=NORMS, seed=SEEDS),
    output:
        runs=table("runs.csv"),
        train_logs=f"{TABLES}/train_logs.csv",
    params:
        runs=RUNS,
        tables=lambda w, output: Path(output.runs).parent,
    log:
        f"{LOGS}/aggregate.log",
    shell:
        "ganablate aggregate --runs {params.runs} --out-dir {params.tables} > {log} 2>&1"


rule stats:
    input:
        rules.aggregate.output,
    output:
        # Every file `ganablate stats` writes: each table as .csv (in the report), .md and .tex, and the plan.
        **{name: table(f"{name}.csv", category=STAT_TABLES[name]) for name in STAT_TABLES},
        md=expand(f"{TABLES}/{{name}}.md", name=STAT_TABLES),
        tex=expand(f"{TABLES}/{{name}}.tex", name=STAT_TABLES),
        plan=f"{TABLES}/plan.json",
    params:
        config=sections("stats", "study"),
        tables=lambda w, output: Path(output.summary).parent,
    log:
        f"{LOGS}/stats.log",
    shell:
        "ganablate stats --config-json {params.config:q} --tables {params.tables} > {log} 2>&1"


rule figures:
    input:
        rules.stats.output,
        rules.aggregate.output,
        samples=expand(f"{RUN}/samples", dataset=DATASET, feed=FEEDS, norm=NORMS, seed=SEEDS),
    output:
        figure("primary_per_seed"),
        figure("primary_over_steps"),
        figure("interaction"),
        figure("effects_heatmap"),
        figure("mechanism", category="diagnostics"),
        figure("samples_final", category="samples"),
        pdfs=expand(
            f"{FIGURES}/{{name}}.pdf",
            name=["primary_per_seed", "primary_over_steps", "interaction", "effects_heatmap", "mechanism", "samples_final"],
        ),
    params:
        config=sections("stats", "study"),
        tables=lambda w, input: Path(input[0]).parent,
        figures=lambda w, output: Path(output[0]).parent,
    log:
        f"{LOGS}/figures.log",
    shell:
        "ganablate figures --config-json {params.config:q} --tables {params.tables} --runs-root {RUNS_ROOT}"
        " --out-dir {params.figures} > {log} 2>&1"


rule findings:
    input:
        rules.stats.output,
        rules.aggregate.output,
    output:
        md=report(f"{STUDY}/findings.md", category="findings", caption="../report/findings.rst"),
        # The same page as reStructuredText: the report's front page includes it (workflow/report/workflow.rst).
        rst=f"{STUDY}/findings.rst",
    params:
        config=sections("stats", "study"),
        tables=lambda w, input: Path(input[0]).parent,
    log:
        f"{LOGS}/findings.log",
    shell:
        "ganablate findings --config-json {params.config:q} --tables {params.tables} --out {output.md} > {log} 2>&1"
