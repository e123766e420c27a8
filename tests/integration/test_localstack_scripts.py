"""localstack/create-resources.sh (what Docker users run, and what the compose init services run inside) against
moto over real HTTP: every bucket, table and queue of template.yaml exists as declared, twice in a row."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from lrnstak.local.bootstrap import BUCKET, QUEUE, TABLE
from lrnstak.local.server import EmbeddedAws
from lrnstak.local.template import Template, local_physical_name

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "localstack" / "create-resources.sh"
PREFIX = "lrnstak-compose"
FUNCTIONS_ENDPOINT = "http://moto:5000"
TEMPLATE = Template.load()


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = EmbeddedAws("127.0.0.1")
    server.start()
    yield server.endpoint
    server.stop()


def client(service: str, endpoint: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1")


def create_resources(endpoint: str, env_file: Path) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "AWS_ENDPOINT_URL": endpoint,
        "FUNCTIONS_ENDPOINT_URL": FUNCTIONS_ENDPOINT,
        "LRNSTAK_RESOURCE_PREFIX": PREFIX,
        "LRNSTAK_ENV_FILE": str(env_file),
        "PYTHON": sys.executable,
    }
    result = subprocess.run(
        ["bash", str(SCRIPT)], env=environment, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def runs(endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, Path]:
    """The script run twice; between the runs a queue drifts from the template, as after a template edit."""
    env_file = tmp_path_factory.mktemp("compose") / "env.json"
    first = create_resources(endpoint, env_file)
    queues = TEMPLATE.resources_of_type(QUEUE).items()
    drifting = next(logical for logical, queue in queues if "VisibilityTimeout" in queue["Properties"])
    sqs = client("sqs", endpoint)
    url = sqs.get_queue_url(QueueName=name_of(drifting))["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "31"})
    second = create_resources(endpoint, env_file)
    return first.stdout, second.stdout, env_file


def name_of(logical_id: str) -> str:
    return local_physical_name(logical_id, PREFIX)


def test_a_second_run_succeeds_and_prints_the_same_environment(runs: tuple[str, str, Path]) -> None:
    first, second, _ = runs
    assert first == second
    printed = dict(line.split("=", 1) for line in first.splitlines())
    assert printed["MODELS_BUCKET"] == name_of("ModelsBucket")
    assert printed["CACHE_TABLE"] == name_of("CacheTable")


@pytest.mark.parametrize("logical_id", sorted(TEMPLATE.resources_of_type(BUCKET)))
def test_every_bucket_exists_with_its_versioning(runs: tuple[str, str, Path], endpoint: str, logical_id: str) -> None:
    properties = TEMPLATE.resources[logical_id].get("Properties", {})
    versioning = client("s3", endpoint).get_bucket_versioning(Bucket=name_of(logical_id))
    assert versioning.get("Status") == properties.get("VersioningConfiguration", {}).get("Status")


@pytest.mark.parametrize("logical_id", sorted(TEMPLATE.resources_of_type(TABLE)))
def test_every_table_exists_with_its_keys_indexes_and_ttl(
    runs: tuple[str, str, Path], endpoint: str, logical_id: str
) -> None:
    properties = TEMPLATE.resources[logical_id]["Properties"]
    dynamodb = client("dynamodb", endpoint)
    table = dynamodb.describe_table(TableName=name_of(logical_id))["Table"]
    assert table["KeySchema"] == properties["KeySchema"]
    declared = {index["IndexName"]: index["KeySchema"] for index in properties.get("GlobalSecondaryIndexes", [])}
    assert {index["IndexName"]: index["KeySchema"] for index in table.get("GlobalSecondaryIndexes", [])} == declared
    ttl = dynamodb.describe_time_to_live(TableName=name_of(logical_id))["TimeToLiveDescription"]
    if "TimeToLiveSpecification" in properties:
        assert ttl["TimeToLiveStatus"] == "ENABLED"
        assert ttl["AttributeName"] == properties["TimeToLiveSpecification"]["AttributeName"]
    else:
        assert ttl["TimeToLiveStatus"] == "DISABLED"


@pytest.mark.parametrize("logical_id", sorted(TEMPLATE.resources_of_type(QUEUE)))
def test_every_queue_exists_with_its_attributes_and_redrive(
    runs: tuple[str, str, Path], endpoint: str, logical_id: str
) -> None:
    properties = TEMPLATE.resources[logical_id]["Properties"]
    sqs = client("sqs", endpoint)
    url = sqs.get_queue_url(QueueName=name_of(logical_id))["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    for name in ("VisibilityTimeout", "MessageRetentionPeriod"):
        if name in properties:
            assert attributes[name] == str(properties[name]), name
    redrive = properties.get("RedrivePolicy")
    if redrive:
        target = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
        target_url = sqs.get_queue_url(QueueName=name_of(target))["QueueUrl"]
        target_arn = sqs.get_queue_attributes(QueueUrl=target_url, AttributeNames=["QueueArn"])["Attributes"]
        assert json.loads(attributes["RedrivePolicy"]) == {
            "deadLetterTargetArn": target_arn["QueueArn"],
            "maxReceiveCount": int(redrive["maxReceiveCount"]),
        }
    else:
        assert "RedrivePolicy" not in attributes


def test_the_env_file_gives_each_function_its_environment_on_the_compose_network(
    runs: tuple[str, str, Path],
) -> None:
    _, _, env_file = runs
    variables = json.loads(env_file.read_text())
    assert set(variables) == set(TEMPLATE.functions())
    for function, environment in variables.items():
        assert environment["AWS_ENDPOINT_URL"] == FUNCTIONS_ENDPOINT
        assert environment["MODELS_BUCKET"] == name_of("ModelsBucket")
        assert environment["POWERTOOLS_SERVICE_NAME"], function
        queue_urls = [value for name, value in environment.items() if name.endswith("_QUEUE_URL")]
        assert queue_urls
        assert all(url.startswith(f"{FUNCTIONS_ENDPOINT}/") for url in queue_urls)
