"""The API's OpenAPI document, exported from the four function apps into docs/openapi.json.

Each function's FastAPI app describes its own routes; the document keeps, from each, exactly the operations
template.yaml routes to that function (what API Gateway and the local stack serve), and merges their
component schemas. `make test` runs `--check`: it fails when the code and the committed file disagree.

    python -m lrnstak.local.openapi            # rewrite docs/openapi.json
    python -m lrnstak.local.openapi --check    # exit 1, naming what differs, when it is out of date
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from lrnstak import __version__
from lrnstak.local.gateway import load_function_module
from lrnstak.local.template import Template

DOCUMENT_PATH = Path("docs") / "openapi.json"
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


class OpenApiConflict(Exception):
    """Two functions describe the same operation id or component schema differently."""


def combined_openapi(template: Template | None = None) -> dict[str, Any]:
    template = template or Template.load()
    routed: dict[str, set[tuple[str, str]]] = {}
    for route in template.routes():
        routed.setdefault(route.function, set()).add((route.path, route.method.lower()))

    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {}
    operation_ids: dict[str, str] = {}
    for function in sorted(routed):
        document = load_function_module(template, function).app.openapi()
        for path, operations in document.get("paths", {}).items():
            for method, operation in operations.items():
                if method not in HTTP_METHODS or (path, method) not in routed[function]:
                    continue
                _claim(operation_ids, operation["operationId"], f"{function} {method.upper()} {path}")
                paths.setdefault(path, {})[method] = operation
        for name, schema in document.get("components", {}).get("schemas", {}).items():
            if name in schemas and schemas[name] != schema:
                raise OpenApiConflict(f"component schema {name!r} differs between functions (again in {function})")
            schemas[name] = schema

    missing = sorted(
        f"{method.upper()} {path} ({function})"
        for function, routes in routed.items()
        for path, method in routes
        if method not in paths.get(path, {})
    )
    if missing:
        raise OpenApiConflict("routed in template.yaml but not described by the function's app: " + ", ".join(missing))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "lrnstak",
            "version": __version__,
            "description": "Train scikit-learn models, keep every version in a registry, serve predictions, "
            "and a key/value store with TTL. Every error answers {error: {code, message, ...}}.",
        },
        "paths": {path: dict(sorted(paths[path].items())) for path in sorted(paths)},
        "components": {"schemas": dict(sorted(schemas.items()))},
    }


def _claim(operation_ids: dict[str, str], operation_id: str, where: str) -> None:
    if operation_id in operation_ids:
        raise OpenApiConflict(f"operation id {operation_id!r} is used by {operation_ids[operation_id]} and {where}")
    operation_ids[operation_id] = where


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lrnstak.local.openapi", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the file instead of writing it")
    parser.add_argument("--output", type=Path, help="the file (default: docs/openapi.json in the checkout)")
    arguments = parser.parse_args(argv)

    template = Template.load()
    path = arguments.output or template.root / DOCUMENT_PATH
    text = render(combined_openapi(template))
    if not arguments.check:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
        return 0
    current = path.read_text() if path.exists() else ""
    if current == text:
        print(f"{path} is up to date")
        return 0
    print(
        f"{path} is out of date with the apps' routes and schemas: run `make openapi` and commit the result.",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
