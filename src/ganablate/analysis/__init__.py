"""From run folders to the study's tables.

The pipeline: run folders -> aggregate (runs.csv, train_logs.csv) -> plan (what was declared, frozen at launch)
-> contrasts (one engine: per-seed linear contrasts of the log metric over cells, tested over seeds) -> power,
factorial, mechanism -> tables (the registry of what `ganablate stats` writes). Every module here is axis-free:
the axes, their levels and the contrasts come from the config's design (ganablate.study.design).
"""
