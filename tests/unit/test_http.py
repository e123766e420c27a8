"""The HTTP shell: path prefixes API Gateway adds, and the one error shape."""

from lrnstak.http import PUBLIC_PREFIX_KEY, strip_path_prefix

from support.events import http_v2_event, rest_v1_event


def test_http_api_named_stage_is_stripped() -> None:
    event = strip_path_prefix(http_v2_event("GET", "/models", stage="prod"), "")
    assert event["requestContext"]["http"]["path"] == "/models"


def test_http_api_default_stage_is_left_alone() -> None:
    event = strip_path_prefix(http_v2_event("GET", "/models"), "")
    assert event["requestContext"]["http"]["path"] == "/models"


def test_a_path_that_merely_starts_like_the_stage_is_left_alone() -> None:
    event = http_v2_event("GET", "/production/x", stage="prod")
    event["requestContext"]["http"]["path"] = "/production/x"
    assert strip_path_prefix(event, "")["requestContext"]["http"]["path"] == "/production/x"


def test_rest_api_path_already_excludes_the_stage() -> None:
    event = strip_path_prefix(rest_v1_event("GET", "/models/m", stage="prod"), "")
    assert event["path"] == "/models/m"


def test_custom_domain_base_path_is_stripped_in_both_shapes() -> None:
    rest = rest_v1_event("GET", "/v1/models")
    assert strip_path_prefix(rest, "/v1")["path"] == "/models"
    http = http_v2_event("GET", "/v1/models", stage="prod")
    assert strip_path_prefix(http, "v1/")["requestContext"]["http"]["path"] == "/models"


def test_the_prefix_the_client_used_is_kept_for_links() -> None:
    assert strip_path_prefix(rest_v1_event("GET", "/train/jobs/x", stage="dev"), "")[PUBLIC_PREFIX_KEY] == "/dev"
    assert strip_path_prefix(http_v2_event("GET", "/models", stage="prod"), "")[PUBLIC_PREFIX_KEY] == "/prod"
    assert strip_path_prefix(http_v2_event("GET", "/models"), "")[PUBLIC_PREFIX_KEY] == ""
    custom_domain = rest_v1_event("GET", "/v1/models")
    custom_domain["requestContext"]["path"] = "/v1/models"  # a custom domain's URL has no stage
    assert strip_path_prefix(custom_domain, "/v1")[PUBLIC_PREFIX_KEY] == "/v1"
    root = http_v2_event("GET", "/", stage="prod")
    assert strip_path_prefix(root, "")[PUBLIC_PREFIX_KEY] == "/prod"


def test_a_client_cannot_choose_the_prefix() -> None:
    event = rest_v1_event("GET", "/models", stage="prod")
    event[PUBLIC_PREFIX_KEY] = "https://elsewhere.example"
    assert strip_path_prefix(event, "")[PUBLIC_PREFIX_KEY] == "/prod"
