"""The registry page (GET /) in a real browser: Debian's headless Chromium, driven by Playwright, against the
local stack started with an API key, after training two versions of a classifier and one regressor through
the API. Checks what is drawn (tables, the metric chart, feature weight bars, the hold-out charts), the key
form, the page under a stage prefix without its trailing slash, and that the browser reports no errors."""

import re
import secrets
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Route, expect, sync_playwright
from sklearn.datasets import load_diabetes, load_iris

from support.events import rest_v1_event
from support.functions import invoke
from support.scripts import load_script
from support.stack import RunningStack, start_stack

# Debian's Chromium with the flags this machine's closed network needs: the ones `make screenshot` uses.
SCREENSHOT = load_script("screenshot")
CHROMIUM, CHROMIUM_ARGS = SCREENSHOT.CHROMIUM, SCREENSHOT.CHROMIUM_ARGS
IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
DIABETES_FEATURES = list(load_diabetes().feature_names)
# What Chromium logs for each API call answered 403 before the key is entered: expected, nothing else is.
REFUSED = re.compile(r"Failed to load resource: the server responded with a status of 403")


def iris_rows() -> list[dict[str, Any]]:
    data = load_iris()
    return [
        {**dict(zip(IRIS_FEATURES, map(float, x), strict=True)), "species": str(data.target_names[t])}
        for x, t in zip(data.data, data.target, strict=True)
    ]


def diabetes_rows() -> list[dict[str, Any]]:
    data = load_diabetes()
    return [
        {**dict(zip(DIABETES_FEATURES, map(float, x), strict=True)), "progression": float(y)}
        for x, y in zip(data.data, data.target, strict=True)
    ]


@pytest.fixture(scope="module")
def api_key() -> str:
    return secrets.token_urlsafe(18)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, api_key: str) -> Iterator[RunningStack]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LRNSTAK_API_KEY", api_key)
        running = start_stack(Path(tmp_path_factory.mktemp("page-stack")), reset=True)
    reader = threading.Thread(target=_keep_reading, args=(running,), daemon=True)  # a full pipe would block it
    reader.start()
    yield running
    running.process.send_signal(signal.SIGTERM)
    assert running.process.wait(timeout=30) == 0, "\n".join(running.output[-60:])
    reader.join(timeout=5)


def _keep_reading(running: RunningStack) -> None:
    assert running.process.stdout is not None
    for line in running.process.stdout:
        running.output.append(line.rstrip())


@pytest.fixture(scope="module")
def api(stack: RunningStack, api_key: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=120, headers={"x-api-key": api_key}) as client:
        yield client


@pytest.fixture(scope="module")
def trained(api: httpx.Client) -> dict[str, dict[str, Any]]:
    """Two versions of a classifier (coefficients, then importances) and one regressor; their info by name."""
    iris, diabetes = iris_rows(), diabetes_rows()
    for model, rows, target, algorithm in (
        ("flowers", iris, "species", "logistic_regression"),
        ("flowers", iris, "species", "random_forest"),
        ("progression", diabetes, "progression", "linear_regression"),
    ):
        body = {"training_data": rows, "parameters": {"target_label": target, "algorithm": algorithm}}
        response = api.post(f"/train/{model}", json=body)
        assert response.status_code == 200, response.text
    return {
        f"{model}/{version}": api.get(f"/models/{model}/{version}/info").json()
        for model, version in (("flowers", "v1"), ("flowers", "v2"), ("progression", "v1"))
    }


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y --no-install-recommends chromium (.ci/run does)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class BrowserErrors:
    def __init__(self, page: Page) -> None:
        self.console: list[str] = []
        self.uncaught: list[str] = []
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.uncaught.append(str(error)))

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.console.append(message.text)


def test_trained_versions_carry_their_explanation_and_holdout(trained: dict[str, dict[str, Any]]) -> None:
    logistic, forest, linear = trained["flowers/v1"], trained["flowers/v2"], trained["progression/v1"]
    assert logistic["explanation"]["kind"] == "coefficients"
    assert logistic["explanation"]["classes"] == ["setosa", "versicolor", "virginica"]
    assert forest["explanation"]["kind"] == "importances"
    assert linear["explanation"]["kind"] == "coefficients"
    assert logistic["holdout"]["labels"] == ["setosa", "versicolor", "virginica"]
    assert len(linear["holdout"]["pairs"]) == linear["holdout"]["rows"] == 89  # 20% of 442 rows
    assert "explanation" not in linear["training_scores"]


def test_the_page_is_open_self_contained_and_locked_down(stack: RunningStack) -> None:
    response = httpx.get(stack.url + "/", timeout=30)  # no key: a browser's navigation sends none
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "connect-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    assert re.search(r"script-src 'sha256-[A-Za-z0-9+/=]+'", policy)
    assert not re.search(r"(src|href)=\"(https?:)?//", response.text)  # nothing fetched from elsewhere
    assert httpx.get(stack.url + "/models", timeout=30).status_code == 403  # the data stays behind the key


@pytest.mark.usefixtures("aws")
def test_the_registry_function_serves_the_page_for_the_stage_root() -> None:
    """API Gateway sends /prod and /prod/ to the root resource: the function answers the page to both."""
    for sent in ("/prod", "/prod/"):
        event = rest_v1_event("GET", "/")
        event["requestContext"]["path"] = sent
        response = invoke("RegistryFunction", event)
        assert response.status == 200, response.raw_body
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert "script-src 'sha256-" in response.headers["content-security-policy"]
        assert b'<table id="models">' in response.raw_body


def test_the_page_draws_models_versions_metrics_and_explanations(
    stack: RunningStack, api_key: str, trained: dict[str, dict[str, Any]], browser: Browser
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    errors = BrowserErrors(page)
    page.goto(stack.url + "/")

    # The API wants a key: the page asks, says so when it is refused, then keeps the one that works.
    form = page.locator("#key-form")
    expect(form).to_be_visible()
    page.fill("#key-input", "not-the-key")
    page.click("#key-form button[type=submit]")
    expect(page.locator("#key-reason")).to_contain_text("refused")
    page.fill("#key-input", api_key)
    page.click("#key-form button[type=submit]")
    expect(form).to_be_hidden()
    refused_before_key = list(errors.console)
    assert refused_before_key
    assert all(REFUSED.search(text) for text in refused_before_key), refused_before_key

    rows = page.locator("#models tbody tr")
    expect(rows).to_have_count(2)
    assert rows.nth(0).locator("td").all_text_contents()[:3] == ["flowers", "2", "v2"]
    assert rows.nth(1).locator("td").all_text_contents()[:3] == ["progression", "1", "v1"]

    # The classifier: its two versions in the table and one point each on the metric chart.
    page.click("#models button:text-is('flowers')")
    expect(page.locator("#versions tbody tr")).to_have_count(2)
    expect(page.locator("#metric-select")).to_have_value("accuracy")
    points = page.locator("#metric-chart circle.point")
    expect(points).to_have_count(2)
    assert points.evaluate_all("ps => ps.map(p => p.dataset.version)") == ["v1", "v2"]
    heights = points.evaluate_all("ps => ps.map(p => Number(p.getAttribute('cy')))")
    accuracies = [trained[f"flowers/{v}"]["metrics"]["accuracy"] for v in ("v1", "v2")]
    assert (heights[0] < heights[1]) == (accuracies[0] > accuracies[1]) or heights[0] == heights[1]
    page.select_option("#metric-select", "f1")
    expect(points).to_have_count(2)

    # v1, a multi-class logistic regression: coefficient bars per class, and a confusion matrix.
    page.click("#versions button:text-is('v1')")
    expect(page.locator("#version-heading")).to_contain_text("flowers v1")
    bars = page.locator("#explanation-chart rect.bar")
    expect(bars).to_have_count(4)
    assert sorted(bars.evaluate_all("bs => bs.map(b => b.dataset.feature)")) == sorted(IRIS_FEATURES)
    expect(page.locator("#class-picker")).to_be_visible()
    expect(page.locator("#explanation-caption")).to_contain_text("Coefficients")
    page.select_option("#class-select", label="virginica")
    expect(page.locator("#explanation-caption")).to_contain_text("class virginica")
    drawn = bars.evaluate_all("bs => bs.map(b => [b.dataset.feature, Number(b.dataset.value)])")
    explanation = trained["flowers/v1"]["explanation"]
    expected = dict(zip(explanation["features"], explanation["values"][2], strict=True))
    assert {name: pytest.approx(value) for name, value in drawn} == expected
    cells = page.locator("#holdout-chart rect.cell")
    expect(cells).to_have_count(9)
    matrix = trained["flowers/v1"]["holdout"]["matrix"]
    counts = page.locator("#holdout-chart text.count").all_text_contents()
    assert [int(count) for count in counts] == [count for row in matrix for count in row]

    # v2, chosen on the chart: a forest's importances, no class picker.
    page.click("#metric-chart circle.point[data-version='v2']")
    expect(page.locator("#version-heading")).to_contain_text("flowers v2")
    expect(page.locator("#explanation-caption")).to_contain_text("Feature importances")
    expect(page.locator("#class-picker")).to_be_hidden()
    expect(bars).to_have_count(4)
    expect(page.locator("#versions tbody tr.selected")).to_have_attribute("data-version", "v2")

    # The regressor: signed coefficient bars, and one dot per hold-out row on predicted vs actual.
    page.click("#models button:text-is('progression')")
    expect(page.locator("#versions tbody tr")).to_have_count(1)
    expect(points).to_have_count(1)
    page.click("#versions button:text-is('v1')")
    expect(bars).to_have_count(len(DIABETES_FEATURES))
    assert sorted(bars.evaluate_all("bs => bs.map(b => b.dataset.feature)")) == sorted(DIABETES_FEATURES)
    expect(page.locator("#explanation-chart rect.bar.negative")).not_to_have_count(0)
    expect(page.locator("#holdout-chart circle.pair")).to_have_count(len(trained["progression/v1"]["holdout"]["pairs"]))
    expect(page.locator("#holdout-chart line.diagonal")).to_have_count(1)

    # The key lasts for the tab: a reload asks for nothing.
    page.reload()
    expect(page.locator("#models tbody tr")).to_have_count(2)
    expect(form).to_be_hidden()
    assert errors.uncaught == []
    assert errors.console == refused_before_key
    context.close()


def test_under_a_stage_prefix_without_the_slash_the_page_calls_the_api_under_it(
    stack: RunningStack, api_key: str, trained: dict[str, dict[str, Any]], browser: Browser
) -> None:
    """Deployed, the page is https://<api>/prod (or /prod/): its calls must go to /prod/models, not /models."""
    context = browser.new_context()
    asked: list[str] = []

    def as_stage(route: Route) -> None:
        path = route.request.url[len(stack.url) :]
        asked.append(path)
        stripped = path[len("/prod") :] or "/"
        route.fulfill(response=route.fetch(url=stack.url + stripped))

    context.route(re.compile(re.escape(stack.url) + r"/prod(/.*)?$"), as_stage)
    context.add_init_script(f"sessionStorage.setItem('lrnstak.api_key', {api_key!r})")
    page = context.new_page()
    errors = BrowserErrors(page)
    page.goto(stack.url + "/prod")
    expect(page.locator("#models tbody tr")).to_have_count(2)
    page.click("#models button:text-is('flowers')")
    expect(page.locator("#metric-chart circle.point")).to_have_count(2)
    assert asked[0] == "/prod"
    assert "/prod/models?limit=100" in asked
    assert "/prod/models/flowers" in asked
    assert errors.console == []
    assert errors.uncaught == []
    context.close()
