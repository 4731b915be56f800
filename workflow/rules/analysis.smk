localrules:
    aggregate,
    stats,
    figures,
    findings,


TABLES = "results/tables"
FIGURES = "results/figures"


def table(name, category="tables"):
    return report(f"{TABLES}/{name}", category=category, caption=f"../report/{name.split('.')[0]}.rst")


def figure(name, category="figures"):
    return report(f"{FIGURES}/{name}.png", category=category, caption=f"../report/fig_{name}.rst")


rule aggregate:
    input:
        metrics=expand(f"{RUN}/metrics.csv", dataset=DATASET, feed=FEEDS, norm=NORMS, seed=SEEDS),
        logs=expand(f"{RUN}/train_log.csv", dataset=DATASET, feed=FEEDS, norm=NORMS, seed=SEEDS),
    output:
        runs=table("runs.csv"),
        train_logs=f"{TABLES}/train_logs.csv",
    params:
        runs=RUNS,
    log:
        "results/logs/aggregate.log",
    shell:
        "ganablate aggregate --runs {params.runs} --out-dir {TABLES} > {log} 2>&1"


rule stats:
    input:
        rules.aggregate.output.runs,
    output:
        summary=table("summary.csv"),
        summary_md=f"{TABLES}/summary.md",
        summary_tex=f"{TABLES}/summary.tex",
        effects=table("feed_effects.csv"),
        effects_md=f"{TABLES}/feed_effects.md",
        effects_tex=f"{TABLES}/feed_effects.tex",
        interaction=table("interaction.csv"),
        failures=table("failures.csv", category="diagnostics"),
        power=table("power.csv", category="diagnostics"),
    params:
        config=sections("stats"),
    log:
        "results/logs/stats.log",
    shell:
        "ganablate stats --config-json {params.config:q} --tables {TABLES} > {log} 2>&1"


rule figures:
    input:
        rules.stats.output,
        rules.aggregate.output,
        samples=expand(f"{RUN}/samples", dataset=DATASET, feed=FEEDS, norm=NORMS, seed=SEEDS),
    output:
        figure("primary_per_seed"),
        figure("primary_over_steps"),
        figure("interaction"),
        figure("p_improve_heatmap"),
        figure("mechanism", category="diagnostics"),
        figure("samples_final", category="samples"),
        pdfs=expand(
            f"{FIGURES}/{{name}}.pdf",
            name=["primary_per_seed", "primary_over_steps", "interaction", "p_improve_heatmap", "mechanism", "samples_final"],
        ),
    params:
        config=sections("stats"),
    log:
        "results/logs/figures.log",
    shell:
        "ganablate figures --config-json {params.config:q} --tables {TABLES} --runs-root results/runs"
        " --out-dir {FIGURES} > {log} 2>&1"


rule findings:
    input:
        rules.stats.output,
        rules.aggregate.output,
    output:
        report("results/findings.md", category="findings", caption="../report/findings.rst"),
    params:
        config=sections("stats", "study", "train"),
    log:
        "results/logs/findings.log",
    shell:
        "ganablate findings --config-json {params.config:q} --tables {TABLES} --out {output} > {log} 2>&1"
