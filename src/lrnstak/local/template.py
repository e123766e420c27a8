"""Reads template.yaml: the one source of truth for resource definitions, environment and routes."""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT_MARKER = "template.yaml"


try:  # libyaml's parser: the local stack reads the template at every start, ~10x faster than pure Python
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]


class _CloudFormationLoader(_SafeLoader):
    """SafeLoader that keeps intrinsic functions (!Ref, !Sub, !GetAtt...) as {"Fn": value} mappings."""


def _construct_intrinsic(loader: _SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
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
    # False where the event's Auth opens it (under the parameters' defaults): the local key check skips it.
    api_key_required: bool = True


@dataclass(frozen=True)
class Template:
    body: dict[str, Any]
    root: Path

    @classmethod
    def load(cls, root: Path | None = None) -> "Template":
        return cls.from_file((root or find_repo_root()) / REPO_ROOT_MARKER)

    @classmethod
    def from_file(cls, path: Path) -> "Template":
        with path.open() as handle:
            body = yaml.load(handle, Loader=_CloudFormationLoader)  # noqa: S506 - SafeLoader subclass
        return cls(body, path.parent)

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
        condition = self.condition_evaluator(self.parameter_defaults())
        for function, resource in self.functions().items():
            for event in resource.get("Properties", {}).get("Events", {}).values():
                if event.get("Type") == "Api":
                    props = event["Properties"]
                    key_required = choose(props.get("Auth", {}).get("ApiKeyRequired", True), condition)
                    route = Route(function, str(props["Method"]).upper(), str(props["Path"]), key_required is not False)
                    routes.append(route)
        return routes

    def parameter_defaults(self) -> dict[str, str]:
        return {name: str(p.get("Default", "")) for name, p in self.body.get("Parameters", {}).items()}

    def function_environment(self, function: str, physical_names: Mapping[str, str]) -> dict[str, str]:
        """Globals' variables overlaid with the function's own, intrinsic references resolved locally.

        A variable whose `!If` picks `!Ref AWS::NoValue` under the parameters' defaults is left out, as
        CloudFormation leaves it out.
        """
        merged: dict[str, Any] = dict(
            self.body.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
        )
        own = self.functions()[function].get("Properties", {}).get("Environment", {}).get("Variables", {})
        merged.update(own)
        references = {**self.parameter_defaults(), **physical_names}
        condition = self.condition_evaluator(references)
        chosen = {name: choose(value, condition) for name, value in merged.items()}
        return {name: resolve(value, references) for name, value in chosen.items() if value != NO_VALUE}

    def condition_evaluator(self, references: Mapping[str, str]) -> Callable[[str], bool]:
        """Evaluates the template's Conditions by name, against `references` (parameters, resource names),
        and only those asked for: the others may use what cannot be resolved locally."""
        conditions: dict[str, Any] = dict(self.body.get("Conditions", {}))
        values: dict[str, bool] = {}

        def condition(name: str) -> bool:
            if name not in values:
                values[name] = evaluate(conditions[name])
            return values[name]

        def evaluate(expression: Any) -> bool:
            if not isinstance(expression, Mapping) or len(expression) != 1:
                raise ValueError(f"cannot evaluate the condition {expression!r} locally")
            ((function, arguments),) = expression.items()
            if function in {"Condition", "Fn::Condition"}:  # JSON form, and the YAML tag as loaded here
                return condition(str(arguments))
            if function == "Fn::Equals":
                first, second = arguments
                return resolve(first, references) == resolve(second, references)
            if function == "Fn::Not":
                return not evaluate(arguments[0])
            if function == "Fn::And":
                return all(evaluate(argument) for argument in arguments)
            if function == "Fn::Or":
                return any(evaluate(argument) for argument in arguments)
            raise ValueError(f"cannot evaluate the condition {expression!r} locally")

        return condition


NO_VALUE = {"Ref": "AWS::NoValue"}


def choose(value: Any, condition: Callable[[str], bool]) -> Any:
    """Follows `!If [condition, when true, when false]`, nested or not, to the branch the conditions pick."""
    while isinstance(value, Mapping) and "Fn::If" in value:
        name, when_true, when_false = value["Fn::If"]
        value = when_true if condition(name) else when_false
    return value


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
