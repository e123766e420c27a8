"""`make lint-compose`: docker-compose.yml against the Compose Specification's JSON schema, with no Docker.

The schema is vendored in scripts/vendor/ (source and refresh in its README). Also checks what the schema
leaves open and this repository relies on: every image pinned to a version, every service in a profile (a
bare `docker compose up` starts nothing by surprise), every dependency in a profile of its dependant.
"""

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from jsonschema.validators import validator_for

SCHEMA = Path(__file__).resolve().parent / "vendor" / "compose-spec.json"


def schema_errors(document: Any) -> list[str]:
    schema = json.loads(SCHEMA.read_text())
    validator = validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(document), key=lambda error: list(error.absolute_path))
    return [f"{'/'.join(map(str, error.absolute_path)) or '(top)'}: {error.message}" for error in errors]


def unpinned_image(image: str) -> bool:
    name = image.rsplit("/", 1)[-1]
    return "@sha256:" not in image and (":" not in name or name.endswith(":latest"))


def project_errors(document: dict[str, Any]) -> list[str]:
    errors = []
    services: dict[str, dict[str, Any]] = document.get("services", {})
    for name, service in services.items():
        image = service.get("image")
        if image and "build" not in service and unpinned_image(str(image)):
            errors.append(f"services/{name}/image: {image} is not pinned to a version tag")
        profiles = set(service.get("profiles", []))
        if not profiles:
            errors.append(f"services/{name}: in no profile, so every `docker compose up` starts it")
        for dependency in service.get("depends_on", []):
            if dependency not in services:
                errors.append(f"services/{name}/depends_on: no service {dependency}")
            elif not profiles <= set(services[dependency].get("profiles", [])):
                errors.append(f"services/{name}/depends_on: {dependency} is not in every profile of {name}")
    return errors


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check compose files against the compose-spec schema.")
    parser.add_argument("files", nargs="*", type=Path, default=[Path("docker-compose.yml")])
    failed = False
    for path in parser.parse_args(argv).files:
        document = yaml.safe_load(path.read_text())
        errors = schema_errors(document)
        if not errors and isinstance(document, dict):
            errors = project_errors(document)
        for error in errors:
            print(f"{path}: {error}", file=sys.stderr)
        failed = failed or bool(errors)
        if not errors:
            print(f"{path}: valid (compose-spec schema, pinned images, profiles)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
