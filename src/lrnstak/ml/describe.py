"""What the registry says about an estimator without knowing scikit-learn's classes by name."""

from typing import Any


def describe_algorithm(estimator: Any) -> str:
    """The class name of the estimator that predicts: the last step of a Pipeline, else the object itself."""
    steps = getattr(estimator, "steps", None)
    if isinstance(steps, list) and steps and isinstance(steps[-1], tuple) and len(steps[-1]) == 2:
        return describe_algorithm(steps[-1][1])
    return type(estimator).__name__
