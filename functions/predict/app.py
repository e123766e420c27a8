"""The predict function: serves predictions from registered models, in JSON or CSV, and batch jobs over
uploaded datasets."""

from lrnstak.cold_start import ImportsPause

# The cyclic GC is held off while the modules below load; what they made is then frozen out of its way.
imports = ImportsPause()

from dataclasses import asdict
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from mangum import Mangum
from pydantic import ValidationError

from lrnstak.errors import PayloadTooLarge
from lrnstak.http import (
    FastJSONResponse,
    create_app,
    job_accepted,
    media_type_of,
    run_cpu_bound,
    service_dependency,
    wrap_handler,
)
from lrnstak.naming import LATEST
from lrnstak.predict.batch import (
    BatchPredictionService,
    BatchRequest,
    default_output_format,
    get_batch_prediction_service,
)
from lrnstak.predict.service import (
    PredictService,
    column_order,
    csv_answer,
    get_predict_service,
    rows_from_columns,
    rows_from_csv,
)
from lrnstak.predict.snapstart import register_runtime_hooks
from lrnstak.schemas.errors import BODY_ERRORS, error_responses
from lrnstak.schemas.jobs import JobAcceptedResponse
from lrnstak.schemas.predict import (
    PredictBatchRequest,
    PredictionEntry,
    PredictionJobResponse,
    PredictionOutput,
    PredictModelRequest,
)
from lrnstak.settings import get_settings

CSV_MEDIA_TYPE = "text/csv"
JSON_MEDIA_TYPE = "application/json"
MODEL_VERSION_HEADER = "X-Model-Version"

Predictor = Annotated[PredictService, service_dependency(get_predict_service)]
BatchPredictor = Annotated[BatchPredictionService, service_dependency(get_batch_prediction_service)]


async def read_body(request: Request) -> bytes:
    # A body that is JSON or CSV: read here, on the event loop, before the route hands its work to run_cpu_bound.
    return await request.body()


RawBody = Annotated[bytes, Depends(read_body)]

router = APIRouter(tags=["predict"])


def read_request(body: bytes, content_type: str | None) -> tuple[PredictModelRequest, list[str] | None]:
    """The request, and the CSV header when the body is CSV (its options come from the query string)."""
    if content_type is not None and media_type_of(content_type) == CSV_MEDIA_TYPE:
        columns, rows = rows_from_csv(body)
        return PredictModelRequest.model_construct(data=rows), columns
    try:
        return PredictModelRequest.from_json(body), None
    except ValidationError as error:
        raise RequestValidationError(error.errors(include_url=False)) from None


def wants_csv(accept: str | None) -> bool:
    """CSV when the client prefers text/csv to application/json; JSON for anything else, wildcards included."""
    weights: dict[str, float] = {}
    for part in (accept or "").split(","):
        media_type, *parameters = part.split(";")
        weight = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        weights[media_type.strip().lower()] = weight
    return weights.get(CSV_MEDIA_TYPE, 0.0) > max(0.0, weights.get(JSON_MEDIA_TYPE, 0.0))


def checked_size(response: Response) -> Response:
    limit = get_settings().max_response_bytes
    if len(response.body) > limit:
        raise PayloadTooLarge(
            f"The answer is {len(response.body)} bytes; the limit is {limit}. Send fewer rows per request, "
            'or "include_input": false to leave the rows out of the answer.',
            {"limit_bytes": limit},
        )
    return response


def first_set(*values: bool | None, default: bool) -> bool:
    return next((value for value in values if value is not None), default)


@router.post(
    "/predict/model/{name}",
    response_model=list[PredictionEntry],
    operation_id="predict",
    responses={
        200: {"content": {CSV_MEDIA_TYPE: {}}, "description": "One entry per row, in JSON or CSV"},
        **error_responses(*BODY_ERRORS, 404, 503),
    },
    # The route reads its body itself (JSON or CSV), so FastAPI cannot infer what it takes.
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                JSON_MEDIA_TYPE: {"schema": PredictModelRequest.model_json_schema()},
                CSV_MEDIA_TYPE: {"schema": {"type": "string", "description": "A header row, then one row per line."}},
            },
        }
    },
)
async def predict(
    name: str,
    body: RawBody,
    predictor: Predictor,
    content_type: Annotated[str | None, Header()] = None,
    accept: Annotated[str | None, Header()] = None,
    version: str | None = None,
    include_input: bool | None = None,
    probabilities: bool | None = None,
) -> Response:
    # Parsing, predicting and encoding all hold the CPU: on the loop when alone, else on a worker thread.
    return await run_cpu_bound(
        partial(answer_prediction, predictor, name, body, content_type, accept, version, include_input, probabilities)
    )


def answer_prediction(
    predictor: PredictService,
    name: str,
    body: bytes,
    content_type: str | None,
    accept: str | None,
    version: str | None,
    include_input: bool | None,
    probabilities: bool | None,
) -> Response:
    request, csv_columns = read_request(body, content_type)
    rows = rows_from_columns(request.columns, request.data) if request.columns is not None else request.data
    keep_input = first_set(request.include_input, include_input, default=True)
    prediction = predictor.predict(
        name,
        request.version or version or LATEST,
        rows,
        include_input=keep_input,
        probabilities=first_set(request.probabilities, probabilities, default=False),
    )
    headers = {MODEL_VERSION_HEADER: prediction.version}
    if wants_csv(accept):
        columns = csv_columns or request.columns or column_order(rows)
        answer = csv_answer(prediction, columns, keep_input)
        return checked_size(Response(answer, media_type=CSV_MEDIA_TYPE, headers=headers))
    return checked_size(FastJSONResponse(prediction.entries, headers=headers))


@router.post(
    "/predict/model/{name}/batch",
    status_code=202,
    response_model=JobAcceptedResponse,
    operation_id="predict_batch",
    responses=error_responses(*BODY_ERRORS, 404, 503),
)
def predict_batch(name: str, body: PredictBatchRequest, batches: BatchPredictor, http_request: Request) -> JSONResponse:
    request = BatchRequest(
        dataset=body.dataset,
        output_format=body.format or default_output_format(body.dataset),
        include_input=body.include_input,
        probabilities=body.probabilities,
    )
    job = batches.submit(name, body.version or LATEST, request)
    return job_accepted(http_request, job.job_id, job.status, f"/predict/jobs/{job.job_id}")


@router.get(
    "/predict/jobs/{job_id}",
    response_model=PredictionJobResponse,
    operation_id="get_prediction_job",
    responses=error_responses(404, 503),
)
def get_prediction_job(job_id: str, batches: BatchPredictor) -> PredictionJobResponse:
    batch = batches.get_job(job_id)
    output = None if batch.output is None else PredictionOutput.model_validate(asdict(batch.output))
    return PredictionJobResponse.of(batch.job, output=output)


app = create_app("predict", [router], extra_media_types=[CSV_MEDIA_TYPE])
handler = wrap_handler(Mangum(app, lifespan="off"))
register_runtime_hooks()  # SnapStart: preload models before the snapshot, revalidate them after a restore
imports.end()
