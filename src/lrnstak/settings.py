"""Runtime settings, read once from the environment the SAM template (or the local stack) sets."""

from functools import lru_cache
from typing import Annotated

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ResourceName = Annotated[str, Field(min_length=1, max_length=255)]


class Settings(BaseSettings):
    """Every knob of the service. Resource names have no default: a function without them is misdeployed."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore", frozen=True)

    models_bucket: ResourceName
    registry_table: ResourceName
    cache_table: ResourceName
    jobs_table: ResourceName
    idempotency_table: ResourceName
    jobs_queue_url: ResourceName

    # A model answered inline as base64 must fit a Lambda response (6 MB) with room for the rest.
    inline_model_limit_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    presigned_url_seconds: int = Field(default=900, gt=0, le=7 * 24 * 3600)
    # A custom-domain base path mapping (e.g. "/v1") that API Gateway leaves on the path.
    api_base_path: str = ""
    # Attempts per AWS call (the first included): botocore retries throttling and transient errors, then 503.
    aws_max_attempts: int = Field(default=5, ge=1, le=20)
    aws_retry_mode: str = Field(default="standard", pattern="^(standard|adaptive|legacy)$")
    # Optimistic-concurrency retries when several writers update the same model at once.
    registry_write_attempts: int = Field(default=25, ge=1, le=100)
    # API Gateway cuts a request at ~29 s: training that takes longer continues as a job (202).
    sync_training_budget_seconds: float = Field(default=25.0, gt=0, le=28)
    # The worker function's timeout; a job running longer than this has died with its worker.
    worker_timeout_seconds: int = Field(default=900, ge=10, le=900)
    # Lambda takes at most 6 MB of request; larger data goes through POST /datasets.
    max_request_bytes: int = Field(default=6 * 1024 * 1024, gt=0)
    # Finished jobs are kept this long, then DynamoDB's TTL removes them.
    job_retention_days: int = Field(default=30, ge=1, le=365)
    # Predict: a warm function serves a cached model this long before re-reading its registry item, so an
    # overwritten or deleted version is served for at most this long after the registry changed.
    model_cache_revalidate_seconds: float = Field(default=2.0, ge=0, le=300)
    # Predict: artifact bytes of the models a warm function keeps loaded (LRU); a larger model is not cached.
    model_cache_bytes: int = Field(default=512 * 1024 * 1024, ge=0)
    # Browser origins allowed to read answers (comma-separated); empty: no CORS headers at all.
    cors_allowed_origins: str = Field(default="", pattern=r"^[A-Za-z0-9.:/,*-]*$")
    # Predict with SnapStart: models loaded before the snapshot, "name" or "name:version", comma-separated.
    predict_preload_models: str = Field(default="", pattern=r"^[A-Za-z0-9_.,:-]*$")
    # Lambda answers at most 6 MB; predict refuses a larger answer (413) rather than let the invocation fail.
    max_response_bytes: int = Field(default=6 * 1024 * 1024 - 64 * 1024, gt=0)

    @property
    def cors_origins(self) -> list[str]:
        return [origin.strip() for origin in self.cors_allowed_origins.split(",") if origin.strip()]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()  # type: ignore[call-arg]  # resource names come from the environment
