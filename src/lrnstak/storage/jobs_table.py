"""Jobs in DynamoDB (JobsTable in template.yaml): training jobs and batch predictions. Every state change
is a conditional update, so two workers, or a worker and a reader enforcing a lease, never both move the
same job."""

import uuid
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from lrnstak.storage.clients import DynamoDBClient
from lrnstak.storage.documents import from_json_attribute, to_json_attribute
from lrnstak.storage.errors import error_code, translate_aws_errors

JOBS_BY_MODEL_INDEX = "JobsByModel"
JOBS_BY_KIND_INDEX = "JobsByKind"
TRAINING, PREDICTION = "training", "prediction"
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
    output: dict[str, Any] | None = None


@dataclass(frozen=True)
class JobOutcome:
    """What a finished job records besides its status: the version it registered or predicted with, and
    its results (a training job's evaluation, a batch prediction's output file). `recorded`: the runner has
    already committed the job's success, in the same transaction as its result (see `succeed_write`)."""

    version: str | None = None
    algorithm: str | None = None
    training_results: dict[str, Any] | None = None
    output: dict[str, Any] | None = None
    recorded: bool = False


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
        output=from_json_attribute(item, "output"),
    )


class JobsTable:
    def __init__(self, dynamodb: DynamoDBClient, table_name: str) -> None:
        self._dynamodb = dynamodb
        self._table = table_name

    def create(self, job: JobRecord) -> None:
        """Records a new job. Its id is fresh, so an item already there is this very write, retried by botocore
        after its answer was lost."""
        try:
            with translate_aws_errors("record a job"):
                self._dynamodb.put_item(
                    TableName=self._table,
                    Item=job_item(job),
                    ConditionExpression="attribute_not_exists(job_id)",
                )
        except ClientError as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise

    def get(self, job_id: str) -> JobRecord | None:
        with translate_aws_errors("read a job"):
            response = self._dynamodb.get_item(
                TableName=self._table, Key={"job_id": {"S": job_id}}, ConsistentRead=True
            )
        item = response.get("Item")
        return job_from_item(dict(item)) if item else None

    def list_recent(self, kind: str, model: str | None, limit: int) -> list[JobRecord]:
        """The newest jobs of one kind, of one model or of all."""
        query: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": JOBS_BY_KIND_INDEX,
            "KeyConditionExpression": "#k = :kind",
            "ExpressionAttributeNames": {"#k": "kind"},
            "ExpressionAttributeValues": {":kind": {"S": kind}},
            "ScanIndexForward": False,
        }
        if model is not None:
            # A model has few jobs: its index, filtered to the kind (DynamoDB filters after Limit, so page on).
            query.update(
                IndexName=JOBS_BY_MODEL_INDEX,
                KeyConditionExpression="#m = :model",
                FilterExpression="#k = :kind",
                ExpressionAttributeNames={"#m": "model", "#k": "kind"},
                ExpressionAttributeValues={":model": {"S": model}, ":kind": {"S": kind}},
            )
        jobs: list[JobRecord] = []
        with translate_aws_errors("list jobs"):
            while len(jobs) < limit:
                response = self._dynamodb.query(**query, Limit=limit)
                jobs.extend(job_from_item(dict(item)) for item in response.get("Items", []))
                if "LastEvaluatedKey" not in response:
                    break
                query["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return jobs[:limit]

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

    def claim(self, job_id: str, started_at: str, lease_expires_at: float, claim_id: str | None = None) -> bool:
        """queued -> running, for one worker only: the one whose `claim_id` the job then carries (so a claim
        whose answer was lost, and whose retry found the job running, still knows it is its own)."""
        claim_id = claim_id or uuid.uuid4().hex
        if self._update(
            job_id,
            "SET #s = :running, started_at = :started, lease_expires_at = :lease, progress = :p, claim_id = :claim "
            "ADD attempts :one",
            {
                ":running": {"S": RUNNING},
                ":started": {"S": started_at},
                ":lease": {"N": str(lease_expires_at)},
                ":p": {"N": "0.05"},
                ":one": {"N": "1"},
                ":queued": {"S": QUEUED},
                ":claim": {"S": claim_id},
            },
            "#s = :queued",
        ):
            return True
        with translate_aws_errors("read a job"):
            item = self._dynamodb.get_item(
                TableName=self._table, Key={"job_id": {"S": job_id}}, ConsistentRead=True
            ).get("Item", {})
        return item.get("status", {}).get("S") == RUNNING and item.get("claim_id", {}).get("S") == claim_id

    def set_progress(self, job_id: str, progress: float) -> bool:
        return self._update(
            job_id, "SET progress = :p", {":p": {"N": str(progress)}, ":running": {"S": RUNNING}}, "#s = :running"
        )

    def succeed(self, job_id: str, finished_at: str, outcome: JobOutcome) -> bool:
        """running -> succeeded with the outcome; False when the job is not running any more."""
        update = self.succeed_write(job_id, finished_at, outcome)["Update"]
        return self._update(
            job_id,
            update["UpdateExpression"],
            update["ExpressionAttributeValues"],
            update["ConditionExpression"],
            update["ExpressionAttributeNames"],
        )

    def succeed_write(self, job_id: str, finished_at: str, outcome: JobOutcome) -> dict[str, Any]:
        """`succeed` as one write of a TransactWriteItems, for a result committed together with the job's
        success (its condition failing cancels the whole transaction)."""
        assignments = ["#s = :done", "finished_at = :at", "progress = :p"]
        names: dict[str, str] = {"#s": "status"}
        values: dict[str, Any] = {
            ":done": {"S": SUCCEEDED},
            ":at": {"S": finished_at},
            ":p": {"N": "1"},
            ":running": {"S": RUNNING},
        }
        fields = {
            "version": {"S": outcome.version} if outcome.version is not None else None,
            "algorithm": {"S": outcome.algorithm} if outcome.algorithm is not None else None,
            "training_results": (
                to_json_attribute(outcome.training_results, "training_results")
                if outcome.training_results is not None
                else None
            ),
            "output": to_json_attribute(outcome.output, "output") if outcome.output is not None else None,
        }
        for name, value in fields.items():
            if value is not None:
                # `output` is a reserved word in DynamoDB expressions: every field goes through a name.
                assignments.append(f"#{name} = :{name}")
                names[f"#{name}"] = name
                values[f":{name}"] = value
        return {
            "Update": {
                "TableName": self._table,
                "Key": {"job_id": {"S": job_id}},
                "UpdateExpression": "SET " + ", ".join(assignments),
                "ConditionExpression": "#s = :running",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }

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
