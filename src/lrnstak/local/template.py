"""Reads template.yaml: the one source of truth for resource definitions, environment and routes."""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT_MARKER = "template.yaml"


class _CloudFormationLoader(yaml.SafeLoader):
    """SafeLoader that keeps intrinsic functions (!Ref, !Sub, !GetAtt...) as {"Fn": value} mappings."""


def _construct_intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CloudFormationLoader.add_multi_constructor("!", _construct_intrinsic)


def find_repo_root(start: Path | None = None) -> Path:
    here = (start or Path(__file__)).resolve()
    for folder in [here, *here.parents]:
        if (folder / REPO_ROOT_MARKER).is_file() and (folder / "functions").is_dir():
            return folder
    raise FileNotFoundError(
        "template.yaml not found: run the local stack from a checkout of lrnstak (pip install -e .)."
    )


@dataclass(frozen=True)
class Route:
    function: str
    method: str
    path: str


@dataclass(frozen=True)
class Template:
    body: dict[str, Any]
    root: Path

    @classmethod
    def load(cls, root: Path | None = None) -> "Template":
        root = root or find_repo_root()
        with (root / REPO_ROOT_MARKER).open() as handle:
            body = yaml.load(handle, Loader=_CloudFormationLoader)  # noqa: S506 - SafeLoader subclass
        return cls(body, root)

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return dict(self.body.get("Resources", {}))

    def resources_of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {name: r for name, r in self.resources.items() if r.get("Type") == resource_type}

    def functions(self) -> dict[str, dict[str, Any]]:
        return self.resources_of_type("AWS::Serverless::Function")

    def queue_consumers(self) -> list[tuple[str, str]]:
        """(function, queue logical id) for each SQS event source."""
        consumers = []
        for function, resource in self.functions().items():
            for event in resource.get("Properties", {}).get("Events", {}).values():
                if event.get("Type") == "SQS":
                    consumers.append((function, str(event["Properties"]["Queue"]["Fn::GetAtt"][0])))
        return consumers

    def http_functions(self) -> list[str]:
        """Functions API Gateway invokes (the others are fed by queues)."""
        return sorted({route.function for route in self.routes()})

    def function_dir(self, function: str) -> Path:
        return self.root / str(self.functions()[function]["Properties"]["CodeUri"])

    def routes(self) -> list[Route]:
        routes = []
        for function, resource in self.functions().items():
            for event in resource.get("Properties", {}).get("Events", {}).values():
                if event.get("Type") == "Api":
                    props = event["Properties"]
                    routes.append(Route(function, str(props["Method"]).upper(), str(props["Path"])))
        return routes

    def parameter_defaults(self) -> dict[str, str]:
        return {name: str(p.get("Default", "")) for name, p in self.body.get("Parameters", {}).items()}

    def function_environment(self, function: str, physical_names: Mapping[str, str]) -> dict[str, str]:
        """Globals' variables overlaid with the function's own, intrinsic references resolved locally."""
        merged: dict[str, Any] = dict(
            self.body.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
        )
        own = self.functions()[function].get("Properties", {}).get("Environment", {}).get("Variables", {})
        merged.update(own)
        references = {**self.parameter_defaults(), **physical_names}
        return {name: resolve(value, references) for name, value in merged.items()}


def resolve(value: Any, references: Mapping[str, str]) -> str:
    """Resolves the intrinsics the environment uses locally: !Ref to a resource or parameter, and !Sub."""
    if isinstance(value, Mapping):
        if "Ref" in value:
            return references[str(value["Ref"])]
        if "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
            return re.sub(r"\$\{([^}]+)\}", lambda m: references[m.group(1)], value["Fn::Sub"])
        raise ValueError(f"cannot resolve {value!r} locally")
    return str(value)


def local_physical_name(logical_id: str, prefix: str) -> str:
    """RegistryTable -> lrnstak-registry-table: stable, lowercase (valid for buckets too)."""
    kebab = re.sub(r"(?<!^)(?=[A-Z])", "-", logical_id).lower()
    return f"{prefix}-{kebab}"
