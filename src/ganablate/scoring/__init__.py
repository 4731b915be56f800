"""Scoring every checkpoint with torch-fidelity (metrics.csv per run): the feature extractors (the offline domain
classifier, Inception) and the metrics. Reads run folders; imports nothing of training."""
