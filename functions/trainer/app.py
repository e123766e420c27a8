"""The trainer function: trains, evaluates and registers scikit-learn models, now or as jobs."""

from lrnstak.cold_start import ImportsPause

# The cyclic GC is held off while the modules below load; what they made is then frozen out of its way.
imports = ImportsPause()

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from mangum import Mangum

from lrnstak.http import create_app, job_accepted, service_dependency, wrap_handler
from lrnstak.schemas.errors import BODY_ERRORS, error_responses
from lrnstak.schemas.jobs import JobAcceptedResponse
from lrnstak.schemas.trainer import (
    CreateDatasetRequest,
    DatasetResponse,
    JobResponse,
    TrainModelRequest,
    TrainModelResponse,
)
from lrnstak.storage.jobs_table import JobRecord
from lrnstak.trainer.service import TrainerService, TrainingOutcome, get_trainer_service

Trainer = Annotated[TrainerService, service_dependency(get_trainer_service)]

router = APIRouter(tags=["trainer"])


def job_response(job: JobRecord) -> JobResponse:
    return JobResponse.of(job, training_results=job.training_results)


def accepted(request: Request, job: JobRecord) -> JSONResponse:
    return job_accepted(request, job.job_id, job.status, f"/train/jobs/{job.job_id}")


def train_model(
    name: str,
    body: TrainModelRequest,
    request: Request,
    trainer: Trainer,
    prefer: Annotated[str | None, Header()] = None,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> TrainModelResponse | JSONResponse:
    respond_async = prefer is not None and "respond-async" in prefer.lower()
    lambda_context = request.scope.get("aws.context")  # set by Mangum in Lambda
    outcome = trainer.train_model(name, body, respond_async, idempotency_key, lambda_context)
    if not isinstance(outcome, TrainingOutcome):
        return accepted(request, outcome)
    return TrainModelResponse(
        message=f"Model {outcome.model}_{outcome.version} trained and saved.",
        model=outcome.model,
        version=outcome.version,
        algorithm=outcome.algorithm,
        training_results=outcome.training_results,
    )


# The seed's route and the one the old stack's clients call behave the same.
for path, operation_id in (("/train/model/{name}", "train_model"), ("/train/{name}", "train_model_short")):
    router.add_api_route(
        path,
        train_model,
        methods=["POST"],
        response_model=TrainModelResponse,
        responses={
            202: {"model": JobAcceptedResponse, "description": "Continues as a job"},
            **error_responses(*BODY_ERRORS, 409, 503),
        },
        operation_id=operation_id,
    )


@router.get(
    "/train/jobs",
    response_model=list[JobResponse],
    operation_id="list_training_jobs",
    responses=error_responses(400, 422, 503),
)
def list_training_jobs(
    trainer: Trainer, model: str | None = None, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> list[JobResponse]:
    return [job_response(job) for job in trainer.list_jobs(model, limit)]


@router.get(
    "/train/jobs/{job_id}",
    response_model=JobResponse,
    operation_id="get_training_job",
    responses=error_responses(404, 503),
)
def get_training_job(job_id: str, trainer: Trainer) -> JobResponse:
    return job_response(trainer.get_job(job_id))


@router.post(
    "/datasets",
    response_model=DatasetResponse,
    status_code=201,
    operation_id="create_dataset",
    responses=error_responses(*BODY_ERRORS, 503),
)
def create_dataset(body: CreateDatasetRequest, trainer: Trainer) -> DatasetResponse:
    upload = trainer.create_dataset(body.format)
    return DatasetResponse(dataset_id=upload.dataset_id, upload_url=upload.upload_url, expires_at=upload.expires_at)


app = create_app("trainer", [router])
handler = wrap_handler(Mangum(app, lifespan="off"))
imports.end()
