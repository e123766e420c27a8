"""What the Lambda layers ship must be exactly what the dev environment runs (one lock of truth)."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def pins(path: Path) -> dict[str, str]:
    result = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            result[name.lower().replace("_", "-")] = version
    return result


LOCK = pins(ROOT / "requirements" / "lock.txt")


@pytest.mark.parametrize("requirements", ["src/requirements.txt", "layers/sklearn/requirements.txt"])
def test_layer_pins_match_the_lock(requirements: str) -> None:
    layer = pins(ROOT / requirements)
    assert layer, requirements
    mismatched = {name: (version, LOCK.get(name)) for name, version in layer.items() if LOCK.get(name) != version}
    assert mismatched == {}


def test_layers_leave_boto3_to_the_lambda_runtime() -> None:
    shipped = set(pins(ROOT / "src/requirements.txt")) | set(pins(ROOT / "layers/sklearn/requirements.txt"))
    assert not shipped & {"boto3", "botocore", "s3transfer"}


# What the Lambda python3.12 runtime already has; the layers may rely on it.
LAMBDA_RUNTIME_PACKAGES = {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3"}


def declared_dependencies(package: str) -> set[str]:
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    environment = {"python_version": "3.12", "sys_platform": "linux", "platform_system": "Linux", "extra": ""}
    result = set()
    for text in requires(package) or []:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate(environment):
            result.add(requirement.name.lower().replace("_", "-"))
    return result


@pytest.mark.parametrize(
    ("requirements", "also_available"),
    [
        ("src/requirements.txt", set()),
        # functions with the scikit-learn layer always have the shared layer too
        ("layers/sklearn/requirements.txt", set(pins(ROOT / "src/requirements.txt"))),
    ],
)
def test_layers_ship_every_dependency_they_need(requirements: str, also_available: set[str]) -> None:
    shipped = set(pins(ROOT / requirements))
    available = shipped | also_available | LAMBDA_RUNTIME_PACKAGES
    missing = {f"{package} needs {dependency}" for package in shipped for dependency in declared_dependencies(package)}
    missing = {entry for entry in missing if entry.split(" needs ")[1] not in available}
    assert missing == set()
