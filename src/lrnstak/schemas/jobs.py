"""Shapes shared by every kind of job: the 202 answer that hands out a job's link, and a failed job's error."""

from typing import Literal

from pydantic import BaseModel, Field

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
