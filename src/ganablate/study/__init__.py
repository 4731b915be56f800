"""What a study is, torch-free: its config (read safely, validated against one schema), its design (axes, cells,
where each run lives, and the one place a cell's levels are applied), its declared contrasts and the plan frozen at
launch (plan.json). The workflow's parse, the analysis and the report read only this stage and the files the others
write."""
