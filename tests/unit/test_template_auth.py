"""What CloudFormation would deploy for a set of parameters: template.yaml expanded the way the service does
it (AWS::LanguageExtensions first, with SAM CLI's implementation of it, then the SAM translator), offline.

Checks who gets in (API keys with a usage plan by default, IAM as a parameter), CORS, the gateway's own
error answers in the one error shape, and SnapStart.

One route is open in every mode: GET /, the registry page (a browser's navigation carries no key and no
signature; the page holds no data and asks for the key its own API calls need).
"""

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from samcli.lib.cfn_language_extensions import PseudoParameterValues, process_template
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
HTTP_METHODS = {"get", "post", "put", "delete", "patch"}
OPEN_ROUTES = {("/", "get")}


class _NoManagedPolicies:
    def load(self) -> dict[str, str]:
        return {}


@cache
def _source() -> dict[str, Any]:
    return dict(yaml_parse(TEMPLATE.read_text()))


def deployed(monkeypatch: pytest.MonkeyPatch, **parameters: str) -> dict[str, Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    template = copy.deepcopy(_source())
    values = {name: spec.get("Default") for name, spec in template["Parameters"].items()} | parameters
    pseudo = PseudoParameterValues(region="us-east-1", account_id="123456789012")
    expanded = process_template(template, parameter_values=values, pseudo_parameters=pseudo)
    expanded["Transform"] = "AWS::Serverless-2016-10-31"
    for resource in expanded["Resources"].values():  # as `sam package` leaves them
        for key in ("CodeUri", "ContentUri"):
            if key in resource.get("Properties", {}):
                resource["Properties"][key] = f"s3://artifacts/{key}"
    return dict(transform(expanded, values, _NoManagedPolicies()))


def rest_api(output: dict[str, Any]) -> dict[str, Any]:
    [api] = [r for r in output["Resources"].values() if r["Type"] == "AWS::ApiGateway::RestApi"]
    return dict(api["Properties"]["Body"])


def operations(body: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, spec) for path, item in body["paths"].items() for method, spec in item.items()]


def resource_types(output: dict[str, Any]) -> list[str]:
    return sorted(r["Type"] for r in output["Resources"].values())


def test_by_default_every_route_needs_an_api_key_of_a_throttled_usage_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    output = deployed(monkeypatch)
    body = rest_api(output)
    routes = [(path, method, spec) for path, method, spec in operations(body) if method in HTTP_METHODS]
    assert len(routes) >= 25
    for path, method, spec in routes:
        expected = [] if (path, method) in OPEN_ROUTES else [{"api_key": []}]
        assert spec.get("security") == expected, (path, method)
    assert {(path, method) for path, method, _ in routes} >= OPEN_ROUTES
    assert not [op for op in operations(body) if op[1] == "options"]  # no CORS unless asked
    types = resource_types(output)
    for needed in ("AWS::ApiGateway::UsagePlan", "AWS::ApiGateway::ApiKey", "AWS::ApiGateway::UsagePlanKey"):
        assert needed in types
    [plan] = [r for r in output["Resources"].values() if r["Type"] == "AWS::ApiGateway::UsagePlan"]
    assert plan["Properties"]["Throttle"] == {"RateLimit": 50, "BurstLimit": 100}
    assert plan["Properties"]["Quota"] == {"Limit": 100000, "Period": "DAY"}
    assert output["Outputs"]["ApiKeyId"]["Value"] == {"Ref": "LrnstakApiApiKey"}


def test_iam_mode_signs_every_route_and_creates_no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    output = deployed(monkeypatch, AuthMode="IAM")
    routes = operations(rest_api(output))
    for path, method, spec in routes:
        expected = [{"NONE": []}] if (path, method) in OPEN_ROUTES else [{"AWS_IAM": []}]
        assert spec.get("security") == expected, (path, method)
    assert {(path, method) for path, method, _ in routes} >= OPEN_ROUTES
    assert "AWS::ApiGateway::UsagePlan" not in resource_types(output)
    assert "AWS::ApiGateway::ApiKey" not in resource_types(output)


def test_cors_adds_preflight_to_every_path_and_tells_the_functions_the_origins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    origins = "https://app.example.com,http://localhost:3000"
    output = deployed(monkeypatch, CorsAllowedOrigins=origins)
    body = rest_api(output)
    for path, item in body["paths"].items():
        assert "options" in item, path
        assert "security" not in item["options"]  # browsers send no key with a preflight
    for name, resource in output["Resources"].items():
        if resource["Type"] == "AWS::Lambda::Function":
            variables = resource["Properties"]["Environment"]["Variables"]
            assert variables["CORS_ALLOWED_ORIGINS"] in (origins, {"Ref": "CorsAllowedOrigins"}), name


def test_the_gateways_own_refusals_use_the_one_error_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    responses = rest_api(deployed(monkeypatch))["x-amazon-apigateway-gateway-responses"]
    assert {"INVALID_API_KEY", "MISSING_AUTHENTICATION_TOKEN", "THROTTLED", "DEFAULT_4XX", "DEFAULT_5XX"} <= set(
        responses
    )
    for name, response in responses.items():
        template = response["responseTemplates"]["application/json"].replace("$context.requestId", "r")
        template = template.replace("$context.error.messageString", "m").replace("$context.httpMethod", "GET")
        document = json.loads(template.replace("$context.path", "/x"))
        assert set(document) == {"error", "request_id"}, name
        assert set(document["error"]) == {"code", "message", "details"}, name
    assert responses["THROTTLED"]["statusCode"] == "429"
    assert responses["THROTTLED"]["responseParameters"]["gatewayresponse.header.Retry-After"] == "'1'"


@pytest.mark.parametrize(("switch", "apply_on"), [("false", "None"), ("true", "PublishedVersions")])
def test_snapstart_follows_its_parameter(monkeypatch: pytest.MonkeyPatch, switch: str, apply_on: str) -> None:
    output = deployed(monkeypatch, PredictSnapStart=switch)
    assert output["Resources"]["PredictFunction"]["Properties"]["SnapStart"] == {"ApplyOn": apply_on}
    aliases = [r for r in output["Resources"].values() if r["Type"] == "AWS::Lambda::Alias"]
    assert [alias["Properties"]["Name"] for alias in aliases] == ["live"]
