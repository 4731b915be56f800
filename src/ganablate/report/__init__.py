"""The study's figures and findings.md, formatted from the tables `ganablate stats` wrote and the plan beside them:
they format, they never compute."""
