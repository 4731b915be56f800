"""From run folders to the study's tables.

The pipeline: run folders -> aggregate (runs.csv, train_logs.csv) -> the Plan (ganablate.study.plan: what was
declared, frozen at launch, built once) -> contrasts (one engine: per-seed linear contrasts of the log metric over
cells, tested over seeds) -> power, factorial, mechanism, remedies -> tables (what `ganablate stats` writes: each
table one register_table call beside its builder, evidence.py). Every builder takes the runs and the Plan, never
the raw config, and is axis-free: the axes, their levels and the contrasts come from the Plan's design.
"""
