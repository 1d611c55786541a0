"""The evaluate stage: generation for the evaluation splits, baselines, scores, report."""
