"""Shapes shared by every kind of job: the 202 answer that hands out a job's link, and a failed job's error."""

from typing import Any, Literal, Protocol, Self

from pydantic import BaseModel, ConfigDict, Field

JobStatus = Literal["queued", "running", "succeeded", "failed"]


class JobLinks(BaseModel):
    self_: str = Field(alias="self", serialization_alias="self")


class JobAcceptedResponse(BaseModel):
    job_id: str
    status: str
    links: JobLinks


class JobError(BaseModel):
    code: str
    message: str


class JobState(Protocol):
    """What a job record offers (lrnstak.storage.jobs_table.JobRecord), read-only."""

    @property
    def job_id(self) -> str: ...

    @property
    def model(self) -> str: ...

    @property
    def version(self) -> str | None: ...

    @property
    def status(self) -> str: ...

    @property
    def progress(self) -> float: ...

    @property
    def created_at(self) -> str: ...

    @property
    def started_at(self) -> str | None: ...

    @property
    def finished_at(self) -> str | None: ...

    @property
    def error(self) -> dict[str, Any] | None: ...


class JobStateResponse(BaseModel):
    """The fields every kind of job answers with; each kind adds its results."""

    model_config = ConfigDict(protected_namespaces=())

    job_id: str
    model: str
    version: str | None
    status: JobStatus
    progress: float
    created_at: str
    started_at: str | None
    finished_at: str | None
    error: JobError | None = None

    @classmethod
    def of(cls, job: JobState, **results: Any) -> Self:
        return cls(
            job_id=job.job_id,
            model=job.model,
            version=job.version,
            status=job.status,  # type: ignore[arg-type]  # the table only holds the four states
            progress=job.progress,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            error=JobError(**job.error) if job.error else None,
            **results,
        )
