"""Creates the buckets, tables and queues of template.yaml on any AWS endpoint (moto here, LocalStack too).

Returns what `!Ref` gives for each resource (bucket and table names, queue URLs), so the functions'
environment is resolved from the template exactly as CloudFormation would.

`python -m lrnstak.local.bootstrap --endpoint-url http://localhost:4566` does the same for the Docker users'
emulators (docker-compose.yml, localstack/create-resources.sh) and prints the environment the functions need.
"""

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from botocore.exceptions import ClientError, EndpointConnectionError

from lrnstak.local.template import Template, local_physical_name
from lrnstak.storage.clients import AwsClients, build_clients

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
        # DynamoDB (and LocalStack) refuse to enable a TTL that is already on: a re-run must not ask twice.
        current = clients.dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if current.get("TimeToLiveStatus") not in {"ENABLED", "ENABLING"}:
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
    try:
        return str(clients.sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])  # type: ignore[arg-type]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in {"QueueAlreadyExists", "QueueNameExists"}:
            raise
    # The queue exists with other attributes (the template changed since): bring it in line.
    url = clients.sqs.get_queue_url(QueueName=name)["QueueUrl"]
    clients.sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)  # type: ignore[arg-type]
    return url


def shared_environment(template: Template, references: Mapping[str, str]) -> dict[str, str]:
    """Every function's variables in one environment (the local stack runs them all in one process)."""
    environment: dict[str, str] = {}
    for function in template.functions():
        environment.update(template.function_environment(function, references))
    environment.pop("POWERTOOLS_SERVICE_NAME", None)
    return environment


def sam_local_environment(
    template: Template, references: Mapping[str, str], endpoint_url: str
) -> dict[str, dict[str, str]]:
    """The file `sam local start-api --env-vars` reads: each function's variables, keyed by its logical id.

    sam local only sets the variables the template declares; AWS_ENDPOINT_URL is one of them only when the
    template declares it (see README, Docker users). Queue URLs point at `endpoint_url` too: the host that
    answered the bootstrap (localhost) is not the one the functions' containers reach.
    """
    queues = template.resources_of_type(QUEUE)
    rebased = {
        logical: rebase_url(value, endpoint_url) if logical in queues else value
        for logical, value in references.items()
    }
    return {
        function: {**template.function_environment(function, rebased), "AWS_ENDPOINT_URL": endpoint_url}
        for function in sorted(template.functions())
    }


def rebase_url(url: str, endpoint_url: str) -> str:
    """The same path on another endpoint: http://localhost:4566/000000000000/q -> http://localstack:4566/000000000000/q"""
    endpoint = urlsplit(endpoint_url)
    return urlunsplit(urlsplit(url)._replace(scheme=endpoint.scheme, netloc=endpoint.netloc))


# An emulator takes any credentials; the shell's real ones (or its profile) are never sent to it.
EMULATOR_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
DROPPED_AWS_ENVIRONMENT = ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE")


def use_emulator(endpoint_url: str, region: str) -> None:
    for name in DROPPED_AWS_ENVIRONMENT:
        os.environ.pop(name, None)
    os.environ.update(EMULATOR_CREDENTIALS, AWS_ENDPOINT_URL=endpoint_url, AWS_DEFAULT_REGION=region, AWS_REGION=region)


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m lrnstak.local.bootstrap",
        description="Create the bucket, tables and queues of template.yaml on an AWS emulator (re-runnable) "
        "and print the environment the functions need, as NAME=value lines.",
    )
    parser.add_argument("--endpoint-url", required=True, help="the emulator, e.g. http://localhost:4566")
    parser.add_argument("--prefix", default="lrnstak", help="resource names start with it (default: lrnstak)")
    parser.add_argument("--region", default="us-east-1", help="default: us-east-1")
    parser.add_argument("--template", type=Path, help="default: the template.yaml of this checkout")
    parser.add_argument(
        "--env-file",
        type=Path,
        help="also write each function's environment there, as JSON for `sam local start-api --env-vars`",
    )
    parser.add_argument(
        "--functions-endpoint-url",
        help="AWS_ENDPOINT_URL in --env-file: the emulator as the functions' containers reach it, "
        "e.g. http://localstack:4566 on the compose network (default: --endpoint-url)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    use_emulator(arguments.endpoint_url, arguments.region)
    try:
        template = Template.from_file(arguments.template) if arguments.template else Template.load()
        references = create_resources(template, build_clients(), arguments.prefix)
    except FileNotFoundError as error:
        raise SystemExit(f"error: {error}") from None
    except EndpointConnectionError:
        raise SystemExit(
            f"error: nothing answers on {arguments.endpoint_url}: start an emulator first "
            "(docker compose --profile moto up -d, or --profile localstack)"
        ) from None
    environment = {**shared_environment(template, references), "AWS_ENDPOINT_URL": arguments.endpoint_url}
    for name, value in sorted(environment.items()):
        print(f"{name}={value}")
    if arguments.env_file:
        endpoint = arguments.functions_endpoint_url or arguments.endpoint_url
        variables = sam_local_environment(template, references, endpoint)
        arguments.env_file.write_text(json.dumps(variables, indent=2, sort_keys=True) + "\n")
        print(f"wrote {arguments.env_file}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
