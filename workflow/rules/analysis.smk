# Lint 'Specify a conda environment or container': see the note in workflow/Snakefile.


localrules:
    aggregate,
    stats,
    figures,
    findings,


rule aggregate:
    input:
        metrics=runs_of("metrics.csv"),
        logs=runs_of("train_log.csv"),
    output:
        runs=table("runs.csv"),
        train_logs=f"{TABLES}/train_logs.csv",
        run_times=f"{TABLES}/run_times.csv",
    log:
        f"{LOGS}/aggregate.log",
    params:
        runs=lambda w, input: [str(Path(path).parent) for path in input.metrics],
        tables=lambda w, output: Path(output.runs).parent,
    shell:
        "ganablate aggregate --runs {params.runs} --out-dir {params.tables} > {log} 2>&1"


rule stats:
    input:
        rules.aggregate.output,
        # A sequential study's last decision: its looks table, and its declared rows' verdicts.
        **({"decision": final_decision} if LOOKS else {}),
    output:
        # Every file `ganablate stats` writes: each table as .csv (in the report), .md and .tex, and the plan.
        **{
            name: table(f"{name}.csv", category=category)
            for name, category in STAT_TABLES.items()
        },
        md=expand(f"{TABLES}/{{name}}.md", name=STAT_TABLES),
        tex=expand(f"{TABLES}/{{name}}.tex", name=STAT_TABLES),
        plan=f"{TABLES}/plan.json",
    log:
        f"{LOGS}/stats.log",
    params:
        config=params(config, "dataset", "study", "model", "train", "eval", "stats"),
        tables=lambda w, output: Path(output.summary).parent,
        decision=lambda w, input: (
            f"--decision {input.decision}" if "decision" in input.keys() else ""
        ),
    shell:
        "ganablate stats --config-json {params.config:q} --tables {params.tables} {params.decision} > {log} 2>&1"


rule figures:
    input:
        rules.stats.output,
        rules.aggregate.output,
        samples=runs_of("samples"),
    output:
        *[figure(name) for name in FIGURE_NAMES],
        pdfs=expand(f"{FIGURES}/{{name}}.pdf", name=FIGURE_NAMES),
    log:
        f"{LOGS}/figures.log",
    params:
        tables=lambda w, input: Path(input[0]).parent,
        runs_root=runs_root,
        figures=lambda w, output: Path(output[0]).parent,
    shell:
        "ganablate figures --tables {params.tables} --runs-root {params.runs_root}"
        " --out-dir {params.figures} > {log} 2>&1"


rule findings:
    input:
        rules.stats.output,
        rules.aggregate.output,
    output:
        md=report(
            f"{STUDY}/findings.md",
            category="findings",
            caption="../report/findings.rst",
        ),
        # The same page as reStructuredText: the report's front page includes it (workflow/report/workflow.rst).
        rst=f"{STUDY}/findings.rst",
    log:
        f"{LOGS}/findings.log",
    params:
        tables=lambda w, input: Path(input[0]).parent,
    shell:
        "ganablate findings --tables {params.tables} --out {output.md} > {log} 2>&1"
