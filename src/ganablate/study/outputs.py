"""The study's outputs by name, with the report category each is shown under: every table `ganablate stats` writes
and every figure `ganablate figures` draws, as their register_table and register_figure calls declare them (read by
catalog.py, without pandas or matplotlib: the workflow imports this)."""

from ganablate import catalog

TABLES = {name: entry["category"] for name, entry in catalog.entries("tables").items()}
FIGURES = {name: entry["category"] for name, entry in catalog.entries("figures").items()}
