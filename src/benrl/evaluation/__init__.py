"""Evaluation: the eval registry, the runner, generation, statistics."""
