"""The algorithms lrnstak trains, by the old stack's names, for regression and classification."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sklearn.base import BaseEstimator
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, LogisticRegression, Ridge, RidgeClassifier
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.svm import SVC, SVR
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from lrnstak.errors import InvalidInput

REGRESSION = "regression"
CLASSIFICATION = "classification"
TASKS = (REGRESSION, CLASSIFICATION)


@dataclass(frozen=True)
class Algorithm:
    name: str
    regressor: Callable[..., BaseEstimator] | None
    classifier: Callable[..., BaseEstimator] | None
    # Distance- and gradient-based estimators need standardised inputs; trees and naive Bayes do not.
    needs_scaling: bool

    def for_task(self, task: str) -> Callable[..., BaseEstimator] | None:
        return self.regressor if task == REGRESSION else self.classifier


CATALOG: dict[str, Algorithm] = {
    algorithm.name: algorithm
    for algorithm in (
        Algorithm("linear_regression", LinearRegression, None, True),
        Algorithm("ridge", Ridge, RidgeClassifier, True),
        Algorithm("lasso", Lasso, None, True),
        Algorithm("elastic_net", ElasticNet, None, True),
        Algorithm("logistic_regression", None, LogisticRegression, True),
        Algorithm("decision_tree", DecisionTreeRegressor, DecisionTreeClassifier, False),
        Algorithm("random_forest", RandomForestRegressor, RandomForestClassifier, False),
        Algorithm("extra_trees", ExtraTreesRegressor, ExtraTreesClassifier, False),
        Algorithm("gradient_boosting", GradientBoostingRegressor, GradientBoostingClassifier, False),
        Algorithm("hist_gradient_boosting", HistGradientBoostingRegressor, HistGradientBoostingClassifier, False),
        Algorithm("knn", KNeighborsRegressor, KNeighborsClassifier, True),
        Algorithm("svm", SVR, SVC, True),
        Algorithm("naive_bayes", None, GaussianNB, False),
        Algorithm("neural_network", MLPRegressor, MLPClassifier, True),
    )
}

# The old stack's four, and their classification counterparts.
DEFAULT_CANDIDATES = {
    REGRESSION: ["linear_regression", "random_forest", "decision_tree", "gradient_boosting"],
    CLASSIFICATION: ["logistic_regression", "random_forest", "decision_tree", "gradient_boosting"],
}


def algorithms_for(task: str) -> list[str]:
    return [name for name, algorithm in CATALOG.items() if algorithm.for_task(task) is not None]


def resolve_candidates(requested: Any, task: str) -> list[str]:
    """The algorithm names to try: one name, a list, or the defaults for the task."""
    if requested is None:
        return list(DEFAULT_CANDIDATES[task])
    names = [requested] if isinstance(requested, str) else requested
    if not isinstance(names, list) or not names or not all(isinstance(name, str) for name in names):
        raise InvalidInput("`algorithm` must be an algorithm name or a non-empty list of names.")
    for name in names:
        algorithm = CATALOG.get(name)
        if algorithm is None:
            raise InvalidInput(
                f"Unknown algorithm {name!r}. Valid algorithms: {', '.join(CATALOG)}.",
                details={"algorithm": name, "valid": list(CATALOG)},
            )
        if algorithm.for_task(task) is None:
            raise InvalidInput(
                f"Algorithm {name!r} does not do {task}. For {task} use one of: {', '.join(algorithms_for(task))}.",
                details={"algorithm": name, "task": task, "valid": algorithms_for(task)},
            )
    return list(dict.fromkeys(names))


def build_estimator(name: str, task: str, hyper: dict[str, Any], random_state: int) -> BaseEstimator:
    """A fresh estimator with the client's hyperparameters; scikit-learn's own message on a bad one."""
    factory = CATALOG[name].for_task(task)
    assert factory is not None
    estimator = factory()
    defaults: dict[str, Any] = {}
    if "random_state" in estimator.get_params():
        defaults["random_state"] = random_state
    try:
        estimator.set_params(**{**defaults, **hyper})
    except (ValueError, TypeError) as error:
        raise InvalidInput(f"Invalid hyperparameters for {name}: {error}", details={"algorithm": name}) from error
    return estimator
