"""Analyses of trained models: persistence under stress and trait directions."""
