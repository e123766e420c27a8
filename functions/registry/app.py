"""The registry function: list, read, upload and delete model versions."""

from lrnstak.cold_start import ImportsPause

# The cyclic GC is held off while the modules below load; what they made is then frozen out of its way.
imports = ImportsPause()

import base64
import binascii
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from mangum import Mangum

from lrnstak.errors import InvalidInput
from lrnstak.http import create_app, service_dependency, wrap_handler
from lrnstak.naming import check_model_name
from lrnstak.registry.page import registry_page
from lrnstak.registry.service import NewVersion, RegistryService, get_registry_service
from lrnstak.schemas.errors import BODY_ERRORS, error_responses
from lrnstak.schemas.registry import (
    BestModelResponse,
    ModelArtifactResponse,
    ModelInfoResponse,
    ModelListEntry,
    ModelVersionsResponse,
    TrainingDataResponse,
    UploadModelRequest,
    UploadModelResponse,
    VersionEntry,
)

Registry = Annotated[RegistryService, service_dependency(get_registry_service)]
NEXT_TOKEN_HEADER = "X-Next-Token"  # noqa: S105 - a header name, not a secret
BEST_OPTIONS = frozenset({"metric", "order"})

router = APIRouter(tags=["registry"])


def encode_next_token(model: str) -> str:
    return base64.urlsafe_b64encode(model.encode()).decode().rstrip("=")


def decode_next_token(token: str) -> str:
    try:
        model = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        return check_model_name(model)
    except (binascii.Error, UnicodeDecodeError, InvalidInput, ValueError):
        raise InvalidInput(
            "next_token is not one this API issued: pass the X-Next-Token header of the previous page."
        ) from None


def decode_model_bytes(text: str) -> bytes:
    try:
        # MIME-style base64 (base64.encodebytes) wraps lines; whitespace is not part of the data.
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("`model` is not valid base64: send the joblib file base64-encoded.") from None


@router.get(
    "/",
    response_class=HTMLResponse,
    operation_id="get_page",
    summary="The registry page: models, versions, metrics and explanations, for a browser",
    description="Open without an API key (a browser cannot send one on navigation); the page asks for the key "
    "when the API wants one and sends it as x-api-key on its own calls.",
    responses={200: {"content": {"text/html": {}}, "description": "One self-contained HTML page."}},
)
def get_page() -> HTMLResponse:
    page = registry_page()
    return HTMLResponse(page.html, headers=page.headers)


@router.get(
    "/models",
    response_model=list[ModelListEntry],
    operation_id="list_models",
    responses=error_responses(400, 422, 503),
)
def list_models(
    registry: Registry,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    next_token: str | None = None,
) -> list[ModelListEntry]:
    page = registry.list_models(limit, decode_next_token(next_token) if next_token else None)
    if page.next_model is not None:
        response.headers[NEXT_TOKEN_HEADER] = encode_next_token(page.next_model)
    return [ModelListEntry.from_summary(summary) for summary in page.summaries]


@router.get(
    "/models/{name}",
    response_model=ModelVersionsResponse,
    operation_id="list_model_versions",
    responses=error_responses(400, 404, 503),
)
def list_model_versions(name: str, registry: Registry) -> ModelVersionsResponse:
    records = registry.list_versions(name)
    return ModelVersionsResponse(model=name, versions=[VersionEntry.from_record(r) for r in records])


@router.get(
    "/models/{name}/best",
    response_model=BestModelResponse,
    operation_id="get_best_model",
    responses=error_responses(400, 404, 422, 503),
)
def get_best_model(
    name: str,
    request: Request,
    registry: Registry,
    metric: str = "mse",
    order: Annotated[str, Query(pattern="^(min|max)$")] = "min",
) -> BestModelResponse:
    filters = {key: value for key, value in request.query_params.items() if key not in BEST_OPTIONS}
    best = registry.find_best(name, metric, order, filters)
    return BestModelResponse(
        model=name,
        version=best.record.version,
        best_score=best.score,
        details=best.details,
        parameters=best.record.parameters,
    )


@router.get(
    "/models/{name}/{version}",
    response_model=ModelArtifactResponse,
    response_model_exclude_none=True,
    operation_id="get_model_version",
    responses=error_responses(400, 404, 422, 503),
)
def get_model_version(
    name: str,
    version: str,
    registry: Registry,
    format: Annotated[str | None, Query(pattern="^(url|inline)$")] = None,
) -> ModelArtifactResponse:
    download = registry.download_model(name, version, as_url=format == "url")
    if download.data is not None:
        return ModelArtifactResponse(model=base64.b64encode(download.data).decode(), parameters=download.parameters)
    return ModelArtifactResponse(model_url=download.url, model_size=download.size, parameters=download.parameters)


@router.get(
    "/models/{name}/{version}/info",
    response_model=ModelInfoResponse,
    operation_id="get_model_info",
    responses=error_responses(400, 404, 503),
)
def get_model_info(name: str, version: str, registry: Registry) -> ModelInfoResponse:
    return ModelInfoResponse.from_record(registry.get_version(name, version))


@router.get(
    "/models/{name}/{version}/training_data",
    response_model=TrainingDataResponse,
    operation_id="get_training_data",
    responses=error_responses(400, 404, 503),
)
def get_training_data(name: str, version: str, registry: Registry) -> TrainingDataResponse:
    record, rows = registry.get_training_data(name, version)
    return TrainingDataResponse(parameters=record.parameters, training_data=rows)


@router.post(
    "/models/{name}",
    response_model=UploadModelResponse,
    operation_id="upload_model",
    responses=error_responses(*BODY_ERRORS, 503),
)
def upload_model(name: str, body: UploadModelRequest, registry: Registry) -> UploadModelResponse:
    saved = registry.save_version(
        name,
        NewVersion(
            model_bytes=decode_model_bytes(body.model),
            version=body.version,
            parameters=body.parameters.model_dump(exclude_none=True),
            training_rows=body.training_data if body.training_data is not None else body.data,
            training_results=body.training_results,
        ),
    )
    return UploadModelResponse(
        model=saved.model, version=saved.version, sha256=saved.sha256, warnings=list(saved.warnings)
    )


@router.delete(
    "/models/{name}/{version}",
    status_code=204,
    operation_id="delete_model_version",
    responses=error_responses(400, 404, 503),
)
def delete_model_version(name: str, version: str, registry: Registry) -> Response:
    registry.delete_version(name, version)
    return Response(status_code=204)


@router.delete("/models/{name}", status_code=204, operation_id="delete_model", responses=error_responses(400, 404, 503))
def delete_model(name: str, registry: Registry) -> Response:
    registry.delete_model(name)
    return Response(status_code=204)


app = create_app("registry", [router])
handler = wrap_handler(Mangum(app, lifespan="off"))
imports.end()
