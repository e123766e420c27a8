"""The local stack resolves `!If` in the functions' environment as CloudFormation would, with the parameters'
defaults: a variable that picks `!Ref AWS::NoValue` is left out (AWS_ENDPOINT_URL only for local runs)."""

from pathlib import Path

import pytest

from lrnstak.local.template import Template

TEMPLATE = """
Parameters:
  AwsEndpointUrl: {Type: String, Default: ""}
  Stage: {Type: String, Default: prod}
Conditions:
  HasAwsEndpointUrl: !Not [!Equals [!Ref AwsEndpointUrl, ""]]
  IsProd: !Equals [!Ref Stage, prod]
  ProdWithoutEndpoint: !And [!Condition IsProd, !Not [!Condition HasAwsEndpointUrl]]
  InUsEast1: !Equals [!Ref AWS::Region, us-east-1]  # unresolvable locally, and used by no variable
Globals:
  Function:
    Environment:
      Variables:
        MODELS_BUCKET: !Ref ModelsBucket
        AWS_ENDPOINT_URL: !If [HasAwsEndpointUrl, !Ref AwsEndpointUrl, !Ref AWS::NoValue]
        LOG_LEVEL: !If [ProdWithoutEndpoint, INFO, !If [IsProd, WARNING, DEBUG]]
Resources:
  ModelsBucket: {Type: AWS::S3::Bucket}
  CacheFunction:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: functions/cache/, Handler: app.handler}
"""


@pytest.fixture
def template(tmp_path: Path) -> Template:
    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE)
    return Template.from_file(path)


def test_a_variable_whose_condition_picks_no_value_is_left_out(template: Template) -> None:
    environment = template.function_environment("CacheFunction", {"ModelsBucket": "models"})
    assert environment == {"MODELS_BUCKET": "models", "LOG_LEVEL": "INFO"}


def test_conditions_follow_the_references_given(template: Template) -> None:
    references = {"ModelsBucket": "models", "AwsEndpointUrl": "http://localstack:4566", "Stage": "dev"}
    environment = template.function_environment("CacheFunction", references)
    assert environment == {
        "MODELS_BUCKET": "models",
        "AWS_ENDPOINT_URL": "http://localstack:4566",
        "LOG_LEVEL": "DEBUG",
    }
