"""Small fitted estimators and their bytes, made here (no downloads)."""

import base64
import io

import joblib
import numpy as np
from sklearn.linear_model import LinearRegression, LogisticRegression


def linear_regression(seed: int = 0) -> LinearRegression:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(40, 3))
    target = features @ np.array([1.5, -2.0, 0.5]) + rng.normal(scale=0.1, size=40)
    return LinearRegression().fit(features, target)


def logistic_regression() -> LogisticRegression:
    rng = np.random.default_rng(1)
    features = rng.normal(size=(60, 2))
    return LogisticRegression().fit(features, (features[:, 0] > 0).astype(int))


def joblib_bytes(estimator: object) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer)
    return buffer.getvalue()


def model_b64(estimator: object | None = None) -> str:
    return base64.b64encode(joblib_bytes(estimator if estimator is not None else linear_regression())).decode()
