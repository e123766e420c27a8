"""Training jobs in DynamoDB (JobsTable in template.yaml). Every state change is a conditional update, so
two workers, or a worker and a reader enforcing a lease, never both move the same job."""

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from lrnstak.storage.clients import DynamoDBClient
from lrnstak.storage.documents import from_json_attribute, to_json_attribute
from lrnstak.storage.errors import error_code, translate_aws_errors

JOBS_BY_MODEL_INDEX = "JobsByModel"
JOBS_BY_KIND_INDEX = "JobsByKind"
TRAINING = "training"
QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
TERMINAL = frozenset({SUCCEEDED, FAILED})


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    model: str
    status: str
    created_at: str
    request_key: str
    expires_at: int
    kind: str = TRAINING
    version: str | None = None
    progress: float = 0.0
    attempts: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    lease_expires_at: float | None = None
    algorithm: str | None = None
    error: dict[str, Any] | None = None
    training_results: dict[str, Any] | None = None


def job_item(job: JobRecord) -> dict[str, Any]:
    item: dict[str, Any] = {
        "job_id": {"S": job.job_id},
        "kind": {"S": job.kind},
        "model": {"S": job.model},
        "status": {"S": job.status},
        "created_at": {"S": job.created_at},
        "request_key": {"S": job.request_key},
        "expires_at": {"N": str(job.expires_at)},
        "progress": {"N": str(job.progress)},
        "attempts": {"N": str(job.attempts)},
    }
    if job.version is not None:
        item["version"] = {"S": job.version}
    return item


def job_from_item(item: dict[str, Any]) -> JobRecord:
    def text(name: str) -> str | None:
        return item[name]["S"] if name in item else None

    return JobRecord(
        job_id=item["job_id"]["S"],
        kind=item["kind"]["S"],
        model=item["model"]["S"],
        status=item["status"]["S"],
        created_at=item["created_at"]["S"],
        request_key=item["request_key"]["S"],
        expires_at=int(item["expires_at"]["N"]),
        version=text("version"),
        progress=float(item.get("progress", {"N": "0"})["N"]),
        attempts=int(item.get("attempts", {"N": "0"})["N"]),
        started_at=text("started_at"),
        finished_at=text("finished_at"),
        lease_expires_at=float(item["lease_expires_at"]["N"]) if "lease_expires_at" in item else None,
        algorithm=text("algorithm"),
        error=from_json_attribute(item, "error"),
        training_results=from_json_attribute(item, "training_results"),
    )


class JobsTable:
    def __init__(self, dynamodb: DynamoDBClient, table_name: str) -> None:
        self._dynamodb = dynamodb
        self._table = table_name

    def create(self, job: JobRecord) -> None:
        with translate_aws_errors("record a job"):
            self._dynamodb.put_item(
                TableName=self._table,
                Item=job_item(job),
                ConditionExpression="attribute_not_exists(job_id)",
            )

    def get(self, job_id: str) -> JobRecord | None:
        with translate_aws_errors("read a job"):
            response = self._dynamodb.get_item(
                TableName=self._table, Key={"job_id": {"S": job_id}}, ConsistentRead=True
            )
        item = response.get("Item")
        return job_from_item(dict(item)) if item else None

    def list_recent(self, model: str | None, limit: int) -> list[JobRecord]:
        index, key, value = (JOBS_BY_MODEL_INDEX, "model", model) if model else (JOBS_BY_KIND_INDEX, "kind", TRAINING)
        with translate_aws_errors("list jobs"):
            response = self._dynamodb.query(
                TableName=self._table,
                IndexName=index,
                KeyConditionExpression="#k = :v",
                ExpressionAttributeNames={"#k": key},
                ExpressionAttributeValues={":v": {"S": str(value)}},
                ScanIndexForward=False,
                Limit=limit,
            )
        return [job_from_item(dict(item)) for item in response.get("Items", [])]

    def unfinished(self) -> list[JobRecord]:
        """Every queued or running job (a scan: for the local stack's recovery after a restart)."""
        paginator = self._dynamodb.get_paginator("scan")
        jobs: list[JobRecord] = []
        with translate_aws_errors("scan jobs"):
            for page in paginator.paginate(
                TableName=self._table,
                FilterExpression="#s IN (:queued, :running)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":queued": {"S": QUEUED}, ":running": {"S": RUNNING}},
                ConsistentRead=True,
            ):
                jobs.extend(job_from_item(dict(item)) for item in page.get("Items", []))
        return jobs

    def claim(self, job_id: str, started_at: str, lease_expires_at: float) -> bool:
        """queued -> running, for one worker only."""
        return self._update(
            job_id,
            "SET #s = :running, started_at = :started, lease_expires_at = :lease, progress = :p ADD attempts :one",
            {
                ":running": {"S": RUNNING},
                ":started": {"S": started_at},
                ":lease": {"N": str(lease_expires_at)},
                ":p": {"N": "0.05"},
                ":one": {"N": "1"},
                ":queued": {"S": QUEUED},
            },
            "#s = :queued",
        )

    def set_progress(self, job_id: str, progress: float) -> bool:
        return self._update(
            job_id, "SET progress = :p", {":p": {"N": str(progress)}, ":running": {"S": RUNNING}}, "#s = :running"
        )

    def succeed(
        self, job_id: str, finished_at: str, version: str, algorithm: str, training_results: dict[str, Any]
    ) -> bool:
        return self._update(
            job_id,
            "SET #s = :done, finished_at = :at, version = :v, algorithm = :a, training_results = :r, progress = :p",
            {
                ":done": {"S": SUCCEEDED},
                ":at": {"S": finished_at},
                ":v": {"S": version},
                ":a": {"S": algorithm},
                ":r": to_json_attribute(training_results, "training_results"),
                ":p": {"N": "1"},
                ":running": {"S": RUNNING},
            },
            "#s = :running",
        )

    def fail(self, job_id: str, finished_at: str, code: str, message: str) -> bool:
        """Any job not finished yet -> failed, with the reason."""
        return self._update(
            job_id,
            "SET #s = :failed, finished_at = :at, #e = :error",
            {
                ":failed": {"S": FAILED},
                ":at": {"S": finished_at},
                ":error": to_json_attribute({"code": code, "message": message}, "error"),
                ":queued": {"S": QUEUED},
                ":running": {"S": RUNNING},
            },
            "#s IN (:queued, :running)",
            {"#e": "error"},
        )

    def _update(
        self,
        job_id: str,
        expression: str,
        values: dict[str, Any],
        condition: str,
        names: dict[str, str] | None = None,
    ) -> bool:
        try:
            with translate_aws_errors("update a job"):
                self._dynamodb.update_item(
                    TableName=self._table,
                    Key={"job_id": {"S": job_id}},
                    UpdateExpression=expression,
                    ConditionExpression=condition,
                    ExpressionAttributeNames={"#s": "status", **(names or {})},
                    ExpressionAttributeValues=values,
                )
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True
