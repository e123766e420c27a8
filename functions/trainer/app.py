"""The trainer function: trains, evaluates and registers scikit-learn models."""

from typing import Annotated

from fastapi import APIRouter, Depends
from mangum import Mangum

from lrnstak.http import create_app, pending_router, wrap_handler
from lrnstak.schemas.trainer import TrainModelRequest, TrainModelResponse
from lrnstak.trainer.service import TrainerService, get_trainer_service

Trainer = Annotated[TrainerService, Depends(get_trainer_service)]

router = APIRouter(tags=["trainer"])


def train_model(name: str, body: TrainModelRequest, trainer: Trainer) -> TrainModelResponse:
    outcome = trainer.train_model(name, body)
    return TrainModelResponse(
        message=f"Model {outcome.model}_{outcome.version} trained and saved.",
        model=outcome.model,
        version=outcome.version,
        algorithm=outcome.algorithm,
        training_results=outcome.training_results,
    )


# The seed's route and the one the old stack's clients call behave the same.
router.add_api_route(
    "/train/model/{name}", train_model, methods=["POST"], response_model=TrainModelResponse, operation_id="train_model"
)
router.add_api_route(
    "/train/{name}", train_model, methods=["POST"], response_model=TrainModelResponse, operation_id="train_model_short"
)

jobs_router = pending_router(
    "trainer",
    [
        ("GET", "/train/jobs", "list_training_jobs"),
        ("GET", "/train/jobs/{job_id}", "get_training_job"),
        ("POST", "/datasets", "create_dataset"),
    ],
)

app = create_app("trainer", [router, jobs_router])
handler = wrap_handler(Mangum(app, lifespan="off"))
