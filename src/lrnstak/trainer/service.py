"""Trainer use cases: turn a training request into a registered, evaluated model version."""

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from lrnstak.errors import InvalidInput, LrnstakError
from lrnstak.ml.safe_loading import dump_model
from lrnstak.ml.training import ENGINE, TrainingSpec, train
from lrnstak.naming import check_model_name, check_version_to_write
from lrnstak.observability import metrics
from lrnstak.registry.service import NewVersion, RegistryService, get_registry_service
from lrnstak.schemas.trainer import TrainModelRequest


@dataclass(frozen=True)
class TrainingOutcome:
    model: str
    version: str
    algorithm: str
    training_results: dict[str, Any]


def training_spec(request: TrainModelRequest, rows: list[Any]) -> TrainingSpec:
    parameters = request.parameters
    if parameters.engine != ENGINE:
        raise InvalidInput(
            f"engine {parameters.engine!r} is not supported: lrnstak trains scikit-learn models (engine 'default').",
            {"field": "parameters.engine"},
        )
    return TrainingSpec(
        rows=rows,
        target=parameters.target_label,
        features=parameters.feature_labels,
        task=parameters.task,
        algorithms=parameters.algorithm,
        hyper=parameters.hyper,
        test_size=parameters.split.test_size,
        random_state=parameters.split.random_state,
        shuffle=parameters.split.shuffle,
        cv=parameters.cv,
        rules=parameters.rules,
        testing_rows=request.testing_data,
        validation_rows=request.validation_data,
        metadata=parameters.metadata,
    )


class TrainerService:
    def __init__(self, registry: RegistryService) -> None:
        self._registry = registry

    def train_model(self, model: str, request: TrainModelRequest) -> TrainingOutcome:
        check_model_name(model)
        if request.version is not None:
            check_version_to_write(request.version)
        rows = self._training_rows(request)
        try:
            trained = train(training_spec(request, rows))
        except LrnstakError:
            metrics.add_metric(name="TrainingFailed", unit=MetricUnit.Count, value=1)
            raise
        seconds = float(trained.training_results["metadata"]["seconds"])
        parameters = {
            **request.parameters.model_dump(mode="json", exclude_none=True),
            "task": trained.task,
            "algorithm": trained.algorithm,
        }
        saved = self._registry.save_version(
            model,
            NewVersion(
                model_bytes=dump_model(trained.pipeline),
                version=request.version,
                parameters=parameters,
                training_rows=rows,
                training_results=trained.training_results,
                algorithm=trained.algorithm,
                feature_schema=trained.feature_schema,
            ),
        )
        metrics.add_metric(name="ModelTrained", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="TrainingDuration", unit=MetricUnit.Seconds, value=seconds)
        return TrainingOutcome(saved.model, saved.version, trained.algorithm, trained.training_results)

    @staticmethod
    def _training_rows(request: TrainModelRequest) -> list[Any]:
        # `training_data` is what is fitted; the old stack's clients also send it as `data`.
        rows = request.training_data if request.training_data is not None else request.data
        if rows is None:
            raise InvalidInput(
                "No rows to train on: send `training_data` (or `data`) as a list of JSON objects.",
                {"field": "training_data"},
            )
        return rows


@lru_cache(maxsize=1)
def get_trainer_service() -> TrainerService:
    return TrainerService(get_registry_service())
