"""Predict: serves predictions from registered models, kept loaded while the function is warm."""
