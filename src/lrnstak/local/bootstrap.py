"""Creates the buckets and tables of template.yaml on any AWS endpoint (moto here, LocalStack too)."""

from typing import Any

from botocore.exceptions import ClientError

from lrnstak.local.template import Template, local_physical_name
from lrnstak.storage.clients import AwsClients

BUCKET = "AWS::S3::Bucket"
TABLE = "AWS::DynamoDB::Table"
TABLE_SETTINGS = ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "LocalSecondaryIndexes")


def physical_names(template: Template, prefix: str) -> dict[str, str]:
    return {
        logical: local_physical_name(logical, prefix)
        for logical in [*template.resources_of_type(BUCKET), *template.resources_of_type(TABLE)]
    }


def create_resources(template: Template, clients: AwsClients, names: dict[str, str]) -> None:
    """Re-runnable: what exists already is left as it is."""
    for logical, resource in template.resources_of_type(BUCKET).items():
        create_bucket(clients, names[logical], resource.get("Properties", {}))
    for logical, resource in template.resources_of_type(TABLE).items():
        create_table(clients, names[logical], resource.get("Properties", {}))


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
