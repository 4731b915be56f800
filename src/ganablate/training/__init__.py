"""Training a cell's seeds: solo runs and stacks of seeds behind one training step, deterministic and resumable;
each run's folder (checkpoints, train_log.csv, summary.json) is this stage's contract with scoring."""
