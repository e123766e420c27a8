"""Each invocation's metrics are published as one EMF record, with ColdStart on the first that succeeds; an
invocation that recorded none prints nothing and warns nothing (lrnstak.observability.publish_metrics)."""

import json
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aws_lambda_powertools.metrics import MetricUnit

from lrnstak.observability import metrics, publish_metrics

from support.functions import FakeLambdaContext

Handler = Callable[[Any, Any], str]


@pytest.fixture(autouse=True)
def no_metrics_left() -> Iterator[None]:
    metrics.clear_metrics()
    yield
    metrics.clear_metrics()


def records(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith('{"_aws"')]


def metric_names(record: dict[str, Any]) -> list[str]:
    return [metric["Name"] for block in record["_aws"]["CloudWatchMetrics"] for metric in block["Metrics"]]


def counting(served: list[int]) -> Handler:
    def handler(event: Any, context: Any) -> str:
        if event.get("count"):
            metrics.add_metric(name="PredictionServed", unit=MetricUnit.Count, value=event["count"])
        if event.get("fail"):
            raise RuntimeError("the handler failed")
        served.append(1)
        return "answered"

    return handler


def test_the_first_invocation_adds_cold_start_then_each_publishes_what_it_recorded(
    capsys: pytest.CaptureFixture[str],
) -> None:
    handler = publish_metrics(counting([]))
    context = FakeLambdaContext()
    capsys.readouterr()

    assert handler({"count": 3}, context) == "answered"
    first = records(capsys.readouterr().out)
    assert sorted(name for record in first for name in metric_names(record)) == ["ColdStart", "PredictionServed"]
    cold = next(record for record in first if "ColdStart" in metric_names(record))
    assert cold["function_name"] == context.function_name

    assert handler({"count": 2}, context) == "answered"
    (second,) = records(capsys.readouterr().out)
    assert metric_names(second) == ["PredictionServed"]
    assert second["PredictionServed"] == [2.0]


def test_an_invocation_with_no_metric_prints_and_warns_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    handler = publish_metrics(counting([]))
    handler({"count": 1}, FakeLambdaContext())  # the cold start, out of the way
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert handler({}, FakeLambdaContext()) == "answered"
    assert caught == []
    assert records(capsys.readouterr().out) == []


def test_a_failed_invocation_still_publishes_what_it_recorded_and_is_not_the_cold_start(
    capsys: pytest.CaptureFixture[str],
) -> None:
    served: list[int] = []
    handler = publish_metrics(counting(served))
    capsys.readouterr()
    with pytest.raises(RuntimeError, match="the handler failed"):
        handler({"count": 5, "fail": True}, FakeLambdaContext())
    (failed,) = records(capsys.readouterr().out)
    assert metric_names(failed) == ["PredictionServed"]

    handler({}, FakeLambdaContext())
    (cold,) = records(capsys.readouterr().out)
    assert metric_names(cold) == ["ColdStart"]
    assert served == [1]
