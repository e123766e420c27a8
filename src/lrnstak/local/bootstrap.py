"""Creates the buckets, tables and queues of template.yaml on any AWS endpoint (moto here, LocalStack too).

Returns what `!Ref` gives for each resource (bucket and table names, queue URLs), so the functions'
environment is resolved from the template exactly as CloudFormation would.
"""

import json
from typing import Any

from botocore.exceptions import ClientError

from lrnstak.local.template import Template, local_physical_name
from lrnstak.storage.clients import AwsClients

BUCKET = "AWS::S3::Bucket"
TABLE = "AWS::DynamoDB::Table"
QUEUE = "AWS::SQS::Queue"
TABLE_SETTINGS = ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "LocalSecondaryIndexes")
QUEUE_ATTRIBUTES = ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "ReceiveMessageWaitTimeSeconds")


def physical_names(template: Template, prefix: str) -> dict[str, str]:
    types = (BUCKET, TABLE, QUEUE)
    return {logical: local_physical_name(logical, prefix) for t in types for logical in template.resources_of_type(t)}


def create_resources(template: Template, clients: AwsClients, prefix: str) -> dict[str, str]:
    """Re-runnable: what exists already is left as it is. Returns each resource's `!Ref` value."""
    names = physical_names(template, prefix)
    references: dict[str, str] = {}
    for logical, resource in template.resources_of_type(BUCKET).items():
        create_bucket(clients, names[logical], resource.get("Properties", {}))
        references[logical] = names[logical]
    for logical, resource in template.resources_of_type(TABLE).items():
        create_table(clients, names[logical], resource.get("Properties", {}))
        references[logical] = names[logical]
    arns: dict[str, str] = {}
    for logical, resource in _queues_in_dependency_order(template):
        url = create_queue(clients, names[logical], resource.get("Properties", {}), arns)
        references[logical] = url
        arns[logical] = clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
    return references


def create_bucket(clients: AwsClients, name: str, properties: dict[str, Any]) -> None:
    try:
        clients.s3.create_bucket(Bucket=name)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
            raise
    status = properties.get("VersioningConfiguration", {}).get("Status")
    if status:
        clients.s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": status})


def create_table(clients: AwsClients, name: str, properties: dict[str, Any]) -> None:
    definition: dict[str, Any] = {key: properties[key] for key in TABLE_SETTINGS if key in properties}
    definition["BillingMode"] = properties.get("BillingMode", "PAY_PER_REQUEST")
    try:
        clients.dynamodb.create_table(TableName=name, **definition)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise
    clients.dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1})
    ttl = properties.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        clients.dynamodb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True}
        )


def _queues_in_dependency_order(template: Template) -> list[tuple[str, dict[str, Any]]]:
    """Dead-letter queues first: a queue's redrive policy names its dead-letter queue's ARN."""
    queues = template.resources_of_type(QUEUE)
    return sorted(queues.items(), key=lambda item: "RedrivePolicy" in item[1].get("Properties", {}))


def create_queue(clients: AwsClients, name: str, properties: dict[str, Any], arns: dict[str, str]) -> str:
    attributes = {key: str(properties[key]) for key in QUEUE_ATTRIBUTES if key in properties}
    redrive = properties.get("RedrivePolicy")
    if redrive:
        target = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
        attributes["RedrivePolicy"] = json.dumps(
            {"deadLetterTargetArn": arns[target], "maxReceiveCount": int(redrive["maxReceiveCount"])}
        )
    return str(clients.sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])  # type: ignore[arg-type]
