"""Trainers for the demo: a gradient-boosting baseline (and the evaluation they share)."""
