"""The model registry in DynamoDB: a summary item per model and an item per version, written together.

Layout (keys must match RegistryTable in template.yaml; tests/unit/test_template.py checks it):
  pk = "MODEL#<name>", sk = "SUMMARY"            versions {version: created_at}, updated_at, revision
  pk = "MODEL#<name>", sk = "VERSION#<version>"  one model version's metadata
  GSI ModelsByName: gsi1pk = "MODELS", gsi1sk = <name>, on summaries only, so GET /models pages in name
  order with one Query per page and never scans.

Every transaction carries a ClientRequestToken: when botocore retries one whose answer was lost, DynamoDB
answers the retry with the first outcome instead of running it again (within ten minutes).
"""

import json
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from botocore.exceptions import ClientError

from lrnstak.errors import PayloadTooLarge, ServiceUnavailable
from lrnstak.storage.clients import DynamoDBClient
from lrnstak.storage.documents import to_json_attribute
from lrnstak.storage.errors import PreconditionFailed, StorageConflict, error_code, translate_aws_errors
from lrnstak.storage.records import ModelSummary, VersionRecord

PARTITION_KEY = "pk"
SORT_KEY = "sk"
MODELS_INDEX = "ModelsByName"
MODELS_INDEX_PARTITION_KEY = "gsi1pk"
MODELS_INDEX_SORT_KEY = "gsi1sk"
MODELS_INDEX_PARTITION = "MODELS"
SUMMARY_SORT_KEY = "SUMMARY"
VERSION_PREFIX = "VERSION#"
# A DynamoDB item holds 400 KB; the summary lists every version, and JSON documents live in the version item.
MAX_VERSIONS_PER_MODEL = 5000
# One transaction holds 100 items: the summary plus up to 99 versions.
MAX_VERSIONS_PER_TRANSACTION = 99

Item = dict[str, Any]
# One write of a TransactWriteItems ({"Put": ...}, {"Update": ...}, ...), possibly on another table.
TransactItem = dict[str, Any]


def model_key(model: str) -> str:
    return f"MODEL#{model}"


def version_item(record: VersionRecord) -> Item:
    item: Item = {
        PARTITION_KEY: {"S": model_key(record.model)},
        SORT_KEY: {"S": VERSION_PREFIX + record.version},
        "model": {"S": record.model},
        "version": {"S": record.version},
        "created_at": {"S": record.created_at},
        "updated_at": {"S": record.updated_at},
        "write_id": {"S": record.write_id},
        "artifact_key": {"S": record.artifact_key},
        "size": {"N": str(record.size)},
        "sha256": {"S": record.sha256},
        "sklearn_version": {"S": record.sklearn_version},
        "algorithm": {"S": record.algorithm},
        "metrics": to_json_attribute(record.metrics, "metrics"),
        "parameters": to_json_attribute(record.parameters, "parameters"),
    }
    if record.training_data_key:
        item["training_data_key"] = {"S": record.training_data_key}
    if record.training_results is not None:
        item["training_results"] = to_json_attribute(record.training_results, "training_results")
    if record.feature_schema is not None:
        item["feature_schema"] = to_json_attribute(record.feature_schema, "feature_schema")
    return item


def version_from_item(item: Item) -> VersionRecord:
    return VersionRecord(
        model=item["model"]["S"],
        version=item["version"]["S"],
        created_at=item["created_at"]["S"],
        updated_at=item["updated_at"]["S"],
        write_id=item["write_id"]["S"],
        artifact_key=item["artifact_key"]["S"],
        training_data_key=item.get("training_data_key", {}).get("S"),
        size=int(item["size"]["N"]),
        sha256=item["sha256"]["S"],
        sklearn_version=item["sklearn_version"]["S"],
        algorithm=item["algorithm"]["S"],
        metrics=json.loads(item["metrics"]["S"]),
        parameters=json.loads(item["parameters"]["S"]),
        training_results=json.loads(item["training_results"]["S"]) if "training_results" in item else None,
        feature_schema=json.loads(item["feature_schema"]["S"]) if "feature_schema" in item else None,
    )


def summary_item(summary: ModelSummary) -> Item:
    if len(summary.versions) > MAX_VERSIONS_PER_MODEL:
        raise PayloadTooLarge(
            f"Model {summary.model} would have more than {MAX_VERSIONS_PER_MODEL} versions; delete old ones first."
        )
    return {
        PARTITION_KEY: {"S": model_key(summary.model)},
        SORT_KEY: {"S": SUMMARY_SORT_KEY},
        MODELS_INDEX_PARTITION_KEY: {"S": MODELS_INDEX_PARTITION},
        MODELS_INDEX_SORT_KEY: {"S": summary.model},
        "model": {"S": summary.model},
        "versions": {"M": {version: {"S": created} for version, created in summary.versions.items()}},
        "updated_at": {"S": summary.updated_at},
        "revision": {"N": str(summary.revision)},
    }


def summary_from_item(item: Item) -> ModelSummary:
    return ModelSummary(
        model=item["model"]["S"],
        versions={version: value["S"] for version, value in item.get("versions", {}).get("M", {}).items()},
        updated_at=item["updated_at"]["S"],
        revision=int(item["revision"]["N"]),
    )


class RegistryTable:
    def __init__(self, dynamodb: DynamoDBClient, table_name: str) -> None:
        self._dynamodb = dynamodb
        self._table = table_name

    def get_summary(self, model: str) -> ModelSummary | None:
        item = self._get_item(model_key(model), SUMMARY_SORT_KEY)
        return summary_from_item(item) if item else None

    def get_version(self, model: str, version: str) -> VersionRecord | None:
        item = self._get_item(model_key(model), VERSION_PREFIX + version)
        return version_from_item(item) if item else None

    def list_versions(self, model: str) -> list[VersionRecord]:
        query: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :prefix)",
            "ExpressionAttributeNames": {"#pk": PARTITION_KEY, "#sk": SORT_KEY},
            "ExpressionAttributeValues": {":pk": {"S": model_key(model)}, ":prefix": {"S": VERSION_PREFIX}},
            "ConsistentRead": True,
        }
        return [version_from_item(item) for item in self._query_all(query)]

    def list_summaries(self, limit: int, after_model: str | None) -> tuple[list[ModelSummary], str | None]:
        """One page of models in name order, and the name to continue after when there are more."""
        condition = "#gp = :gp"
        names = {"#gp": MODELS_INDEX_PARTITION_KEY}
        values: dict[str, Any] = {":gp": {"S": MODELS_INDEX_PARTITION}}
        if after_model is not None:
            condition += " AND #gs > :after"
            names["#gs"] = MODELS_INDEX_SORT_KEY
            values[":after"] = {"S": after_model}
        query: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": MODELS_INDEX,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            # One more than asked tells whether another page exists without a second round trip.
            "Limit": limit + 1,
        }
        summaries: list[ModelSummary] = []
        for item in self._query_all(query):
            summaries.append(summary_from_item(item))
            if len(summaries) > limit:
                return summaries[:limit], summaries[limit - 1].model
        return summaries, None

    def save_version(
        self,
        record: VersionRecord,
        expected_write_id: str | None,
        summary: ModelSummary,
        expected_revision: int,
        also: Sequence[TransactItem] = (),
    ) -> None:
        """Writes the version and the model's summary in one transaction, or neither.

        `also`: writes that commit with them or not at all (a job's success). When one of those finds its
        condition false, PreconditionFailed: retrying will not change it.
        """
        version_put: dict[str, Any] = {"TableName": self._table, "Item": version_item(record)}
        if expected_write_id is None:
            version_put["ConditionExpression"] = "attribute_not_exists(#pk)"
            version_put["ExpressionAttributeNames"] = {"#pk": PARTITION_KEY}
        else:
            version_put["ConditionExpression"] = "#w = :w"
            version_put["ExpressionAttributeNames"] = {"#w": "write_id"}
            version_put["ExpressionAttributeValues"] = {":w": {"S": expected_write_id}}
        writes = [{"Put": version_put}, self._summary_write(summary, expected_revision), *also]
        self._transact(writes, "save a version", guarded=2)

    def delete_versions(self, records: list[VersionRecord], summary: ModelSummary, expected_revision: int) -> None:
        """Deletes versions (each only if unchanged since read) and updates or removes the summary, atomically."""
        if len(records) > MAX_VERSIONS_PER_TRANSACTION:
            raise ValueError(f"at most {MAX_VERSIONS_PER_TRANSACTION} versions per transaction")
        writes: list[dict[str, Any]] = [
            {
                "Delete": {
                    "TableName": self._table,
                    "Key": {
                        PARTITION_KEY: {"S": model_key(record.model)},
                        SORT_KEY: {"S": VERSION_PREFIX + record.version},
                    },
                    "ConditionExpression": "#w = :w",
                    "ExpressionAttributeNames": {"#w": "write_id"},
                    "ExpressionAttributeValues": {":w": {"S": record.write_id}},
                }
            }
            for record in records
        ]
        writes.append(self._summary_write(summary, expected_revision))
        self._transact(writes, "delete versions")

    def _summary_write(self, summary: ModelSummary, expected_revision: int) -> dict[str, Any]:
        guard: dict[str, Any]
        if expected_revision == 0:
            guard = {
                "ConditionExpression": "attribute_not_exists(#pk)",
                "ExpressionAttributeNames": {"#pk": "pk"},
            }
        else:
            guard = {
                "ConditionExpression": "#r = :r",
                "ExpressionAttributeNames": {"#r": "revision"},
                "ExpressionAttributeValues": {":r": {"N": str(expected_revision)}},
            }
        if summary.versions:
            return {"Put": {"TableName": self._table, "Item": summary_item(summary), **guard}}
        key = {PARTITION_KEY: {"S": model_key(summary.model)}, SORT_KEY: {"S": SUMMARY_SORT_KEY}}
        return {"Delete": {"TableName": self._table, "Key": key, **guard}}

    def _transact(self, writes: list[dict[str, Any]], action: str, guarded: int | None = None) -> None:
        """Runs the transaction. A cancellation is a StorageConflict (re-read and retry) when it came from the
        registry's own writes (the first `guarded`; all when None), PreconditionFailed when from the others."""
        try:
            with translate_aws_errors(action):
                self._dynamodb.transact_write_items(
                    TransactItems=writes,  # type: ignore[arg-type]
                    ClientRequestToken=str(uuid.uuid4()),
                )
        except ClientError as error:
            if error_code(error) != "TransactionCanceledException":
                raise
            cancelled = [reason.get("Code", "") for reason in error.response.get("CancellationReasons", [])]
            others = set(cancelled[guarded:]) if guarded is not None else set()
            if "ConditionalCheckFailed" in others:
                raise PreconditionFailed(
                    f"A write made together with the registry's no longer holds, so nothing was written while "
                    f"trying to {action}."
                ) from error
            reasons = set(cancelled)
            if reasons & {"ConditionalCheckFailed", "TransactionConflict"} or not reasons - {"None", ""}:
                raise StorageConflict(f"A concurrent write changed the model while trying to {action}.") from error
            if reasons & {"ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"}:
                raise ServiceUnavailable(f"DynamoDB is busy while trying to {action}; retry shortly.") from error
            raise

    def _get_item(self, partition: str, sort: str) -> Item | None:
        with translate_aws_errors("read the registry"):
            response = self._dynamodb.get_item(
                TableName=self._table,
                Key={PARTITION_KEY: {"S": partition}, SORT_KEY: {"S": sort}},
                ConsistentRead=True,
            )
        item = response.get("Item")
        return dict(item) if item else None

    def _query_all(self, query: dict[str, Any]) -> Iterator[Item]:
        while True:
            with translate_aws_errors("query the registry"):
                response = self._dynamodb.query(**query)
            yield from (dict(item) for item in response.get("Items", []))
            last_key = response.get("LastEvaluatedKey")
            if not last_key:
                return
            query = {**query, "ExclusiveStartKey": last_key}
