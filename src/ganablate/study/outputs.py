"""The study's outputs, named once: every table `ganablate stats` writes and every figure `ganablate figures`
draws, with the report category each is shown under. Light (no pandas, no torch): the workflow imports it."""

TABLES = {
    "summary": "tables",
    "contrasts": "tables",
    "trend": "tables",
    "mechanism": "tables",
    "remedies": "tables",
    "mixed": "diagnostics",
    "failures": "diagnostics",
    "power": "diagnostics",
    "context_gap": "diagnostics",
}

FIGURES = {
    "primary_per_seed": "figures",
    "primary_over_steps": "figures",
    "contrasts": "figures",
    "effects_heatmap": "figures",
    "mechanism": "diagnostics",
    "samples_final": "samples",
}
