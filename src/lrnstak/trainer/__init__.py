"""The trainer: fit, evaluate and register scikit-learn models from rows."""
