"""samconfig.toml: each environment deploys this template with parameters it declares and accepts."""

import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest

from lrnstak.local.template import Template

ROOT = Path(__file__).resolve().parents[2]
CONFIG = tomllib.loads((ROOT / "samconfig.toml").read_text())
ENVIRONMENTS = sorted(name for name in CONFIG if isinstance(CONFIG[name], dict))


def overrides(environment: str) -> dict[str, str]:
    text = CONFIG[environment].get("deploy", {}).get("parameters", {}).get("parameter_overrides", "")
    return dict(item.split("=", 1) for item in shlex.split(text))


def test_there_is_a_default_environment() -> None:
    assert "default" in ENVIRONMENTS
    assert CONFIG["default"]["global"]["parameters"]["stack_name"] == "lrnstak"


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_override_is_a_template_parameter_with_an_allowed_value(environment: str) -> None:
    parameters: dict[str, Any] = Template.load().body["Parameters"]
    for name, value in overrides(environment).items():
        assert name in parameters, f"{environment}: {name} is not a parameter of template.yaml"
        allowed = parameters[name].get("AllowedValues")
        if allowed is not None:
            assert value in [str(option) for option in allowed], (environment, name, value)
    deploy = CONFIG[environment]["deploy"]["parameters"]
    assert deploy["capabilities"] == "CAPABILITY_IAM"
    assert deploy["resolve_s3"] is True
