"""template.yaml is the source of truth: the code's keys, routes and environment must agree with it."""

import re

import pytest

from lrnstak.local.template import Template
from lrnstak.settings import Settings
from lrnstak.storage import registry_table

from support.functions import function_module

TEMPLATE = Template.load()


def key_schema(properties: dict, index: str | None = None) -> dict[str, str]:
    if index is not None:
        properties = next(i for i in properties["GlobalSecondaryIndexes"] if i["IndexName"] == index)
    return {k["KeyType"]: k["AttributeName"] for k in properties["KeySchema"]}


def test_registry_table_keys_match_the_storage_code() -> None:
    properties = TEMPLATE.resources["RegistryTable"]["Properties"]
    assert key_schema(properties) == {"HASH": registry_table.PARTITION_KEY, "RANGE": registry_table.SORT_KEY}
    assert key_schema(properties, registry_table.MODELS_INDEX) == {
        "HASH": registry_table.MODELS_INDEX_PARTITION_KEY,
        "RANGE": registry_table.MODELS_INDEX_SORT_KEY,
    }


def test_cache_table_has_ttl_enabled() -> None:
    ttl = TEMPLATE.resources["CacheTable"]["Properties"]["TimeToLiveSpecification"]
    assert ttl == {"AttributeName": "expires_at", "Enabled": True}


def test_models_bucket_is_versioned_encrypted_and_private() -> None:
    properties = TEMPLATE.resources["ModelsBucket"]["Properties"]
    assert properties["VersioningConfiguration"]["Status"] == "Enabled"
    assert properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert all(properties["PublicAccessBlockConfiguration"].values())


@pytest.mark.parametrize("function", sorted(TEMPLATE.functions()))
def test_every_function_gets_the_settings_it_requires(function: str) -> None:
    names = {logical: f"name-of-{logical}" for logical in TEMPLATE.resources}
    environment = TEMPLATE.function_environment(function, names)
    required = [name.upper() for name, field in Settings.model_fields.items() if field.is_required()]
    assert set(required) <= set(environment)
    assert environment["POWERTOOLS_SERVICE_NAME"]


def fastapi_routes(function: str) -> set[tuple[str, str]]:
    schema = function_module(function).app.openapi()
    return {(method.upper(), path) for path, operations in schema["paths"].items() for method in operations}


@pytest.mark.parametrize("function", TEMPLATE.http_functions())
def test_api_gateway_routes_are_exactly_the_app_routes(function: str) -> None:
    declared = {(r.method, r.path) for r in TEMPLATE.routes() if r.function == function}
    served = fastapi_routes(function)
    if function != "RegistryFunction":
        served.discard(("GET", "/health"))  # every app answers /health; API Gateway sends it to the registry
    assert declared == served


def test_every_function_has_its_own_named_health_route() -> None:
    health = {r.path: r.function for r in TEMPLATE.routes() if r.path.startswith("/health")}
    assert health["/health"] == "RegistryFunction"
    for function in TEMPLATE.http_functions():
        name = re.sub("Function$", "", function).lower()
        assert health[f"/health/{name}"] == function


def test_handlers_are_app_handler() -> None:
    for function, resource in TEMPLATE.functions().items():
        assert resource["Properties"]["Handler"] == "app.handler"
        assert (TEMPLATE.function_dir(function) / "app.py").is_file()
