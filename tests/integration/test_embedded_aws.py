"""The embedded AWS of the local stack holds what was written to it, and nothing more, however long it runs.

moto keeps every model instance it makes (each DynamoDB item, each copy of one that a scan or a condition
made, each S3 object key) in a list per class for its dashboard. In a long-running stack those lists were
its biggest memory growth (benchmarks/soak.py: +130 MiB in 4 minutes of mixed traffic, against 2 MiB of
data); EmbeddedAws drops them after every request.
"""

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.core.model_instances import model_data

from lrnstak.local.server import EmbeddedAws


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = EmbeddedAws("127.0.0.1")
    server.start()
    yield server.endpoint
    server.stop()


def client(service: str, endpoint: str) -> Any:
    return boto3.client(
        service, endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )


def tracked_instances() -> int:
    return sum(len(model.instances_tracked) for models in model_data.values() for model in models.values())  # type: ignore[attr-defined]


def test_writes_and_reads_leave_no_instance_tracked_by_moto(endpoint: str) -> None:
    dynamodb, s3 = client("dynamodb", endpoint), client("s3", endpoint)
    dynamodb.create_table(
        TableName="tracked",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    s3.create_bucket(Bucket="tracked")
    s3.put_bucket_versioning(Bucket="tracked", VersioningConfiguration={"Status": "Enabled"})
    for round_ in range(20):
        for key in range(10):
            dynamodb.put_item(TableName="tracked", Item={"pk": {"S": f"k{key}"}, "n": {"N": str(round_)}})
            dynamodb.update_item(
                TableName="tracked",
                Key={"pk": {"S": f"k{key}"}},
                UpdateExpression="SET n = :n",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":n": {"N": str(round_ + 1)}},
            )
        dynamodb.scan(TableName="tracked")
        s3.put_object(Bucket="tracked", Key="artifact", Body=b"x" * 1000)

    assert tracked_instances() == 0
    # What was written is all there: the stores keep their own references.
    assert dynamodb.scan(TableName="tracked", Select="COUNT")["Count"] == 10
    versions = s3.list_object_versions(Bucket="tracked")["Versions"]
    assert len(versions) == 20
    assert s3.get_object(Bucket="tracked", Key="artifact")["Body"].read() == b"x" * 1000
