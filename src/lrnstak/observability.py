"""The one Logger, Tracer and Metrics of each function (service name from POWERTOOLS_SERVICE_NAME)."""

import functools
from collections.abc import Callable, Generator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment
from aws_lambda_powertools.utilities.typing import LambdaContext


class _NoSegment(BaseSegment):
    def close(self, end_time: int | None = None) -> None:
        pass

    def add_subsegment(self, subsegment: Any) -> None:
        pass

    def remove_subsegment(self, subsegment: Any) -> None:
        pass

    def put_annotation(self, key: str, value: Any) -> None:
        pass

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        pass

    def add_exception(self, exception: BaseException, stack: Any, remote: bool = False) -> None:
        pass


class _NoTracing(BaseProvider):
    """The provider of a disabled Tracer. Powertools' default provider is the X-Ray SDK's recorder, imported
    even when tracing is off: ~0.3 s of every cold start (it builds botocore clients as it loads)."""

    @contextmanager
    def in_subsegment(self, name: Any = None, **kwargs: Any) -> Generator[BaseSegment, None, None]:
        yield _NoSegment()

    @asynccontextmanager
    async def in_subsegment_async(self, name: Any = None, **kwargs: Any) -> Any:
        yield _NoSegment()

    def put_annotation(self, key: str, value: Any) -> None:
        pass

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        pass

    def patch(self, modules: Sequence[str]) -> None:
        pass

    def patch_all(self) -> None:
        pass


def _tracer() -> Tracer:
    # Powertools' own rule: off when POWERTOOLS_TRACE_DISABLED says so, outside Lambda, and under sam local.
    if Tracer._is_tracer_disabled():
        return Tracer(disabled=True, provider=_NoTracing())
    return Tracer()


logger = Logger()
tracer = _tracer()
metrics = Metrics()


def publish_metrics[Result](
    handler: Callable[[Any, LambdaContext], Result],
) -> Callable[[Any, LambdaContext], Result]:
    """Powertools' `log_metrics(capture_cold_start_metric=True)`, except that an invocation that recorded no
    metric (most reads) publishes nothing and says nothing. log_metrics warns "No application metrics to
    publish" on each, and silencing that would take a warning filter, which every forest prediction pays for
    (scikit-learn re-applies each filter around each tree: see ml/predicting.forget_feature_names). What an
    invocation recorded is flushed even when it raises; the first invocation that succeeds adds ColdStart."""
    cold = True

    @functools.wraps(handler)
    def publishing(event: Any, context: LambdaContext) -> Result:
        nonlocal cold
        try:
            response = handler(event, context)
            if cold:
                cold = False
                metrics.provider.add_cold_start_metric(context)  # a record of its own, written at once
        finally:
            if metrics.metric_set:
                metrics.flush_metrics()
        return response

    return publishing
