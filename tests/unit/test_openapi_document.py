"""docs/openapi.json is what the four apps describe, for exactly the routes template.yaml gives them."""

import json

import pytest

from lrnstak.local.openapi import DOCUMENT_PATH, OpenApiConflict, _claim, combined_openapi, main, render
from lrnstak.local.template import Template


@pytest.fixture(scope="module")
def document() -> dict:
    return combined_openapi()


def test_the_committed_file_is_what_the_code_describes(document: dict) -> None:
    committed = (Template.load().root / DOCUMENT_PATH).read_text()
    assert committed == render(document), "docs/openapi.json is out of date: run `make openapi` and commit it"


def test_every_routed_operation_is_described_once_with_an_operation_id(document: dict) -> None:
    template = Template.load()
    described = {
        (path, method.upper()): operation["operationId"]
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }
    routed = {(route.path, route.method) for route in template.routes()}
    assert set(described) == routed
    assert len(set(described.values())) == len(described)


def test_operation_ids_are_the_stable_names_clients_use(document: dict) -> None:
    ids = {operation["operationId"] for operations in document["paths"].values() for operation in operations.values()}
    assert {
        "list_models",
        "get_model_info",
        "upload_model",
        "predict",
        "predict_batch",
        "get_value",
        "put_value",
    } <= ids
    assert all(identifier.isidentifier() and identifier.islower() for identifier in ids)


def test_every_schema_reference_resolves(document: dict) -> None:
    text = json.dumps(document)
    references = {part.split('"')[0] for part in text.split('"$ref": "#/components/schemas/')[1:]}
    assert references
    assert references <= set(document["components"]["schemas"])


def test_a_reused_operation_id_is_refused() -> None:
    seen: dict[str, str] = {}
    _claim(seen, "predict", "predict POST /a")
    with pytest.raises(OpenApiConflict, match="'predict' is used by predict POST /a and cache GET /b"):
        _claim(seen, "predict", "cache GET /b")


def test_check_mode_fails_on_a_stale_file_and_passes_on_a_fresh_one(tmp_path, capsys) -> None:
    stale = tmp_path / "openapi.json"
    stale.write_text("{}\n")
    assert main(["--check", "--output", str(stale)]) == 1
    assert "make openapi" in capsys.readouterr().err
    assert main(["--output", str(stale)]) == 0
    assert main(["--check", "--output", str(stale)]) == 0
