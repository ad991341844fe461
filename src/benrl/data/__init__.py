"""Scenario data: the trait taxonomy, scenario generation, real public eval datasets."""
