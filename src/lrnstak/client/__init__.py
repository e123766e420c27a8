"""The Python client of the lrnstak API: `Client(url, api_key)`, one method per route, one exception.

    from lrnstak.client import Client
    with Client() as lrnstak:                     # $LRNSTAK_API_URL, else http://127.0.0.1:5000
        lrnstak.train("iris", "iris.csv", target="species")
        lrnstak.predict("iris", [{"sepal_length": 5.1, ...}])

Needs only httpx (`pip install lrnstak[client]`); pandas and scikit-learn only where they are used.
"""

from lrnstak.client.client import Client
from lrnstak.client.errors import LrnstakError
from lrnstak.client.models import (
    BatchOutput,
    BestModel,
    Dataset,
    Job,
    JobError,
    ModelInfo,
    ModelSummary,
    PredictionEntry,
    TrainingData,
    TrainResult,
    UploadResult,
    VersionInfo,
)

__all__ = [
    "BatchOutput",
    "BestModel",
    "Client",
    "Dataset",
    "Job",
    "JobError",
    "LrnstakError",
    "ModelInfo",
    "ModelSummary",
    "PredictionEntry",
    "TrainResult",
    "TrainingData",
    "UploadResult",
    "VersionInfo",
]
