"""Fixtures for every suite: a fake AWS (moto) bootstrapped from template.yaml, as the local stack does."""

import os
from collections.abc import Iterator

import pytest

# Never reach a real account from a test, whatever the shell has configured.
for _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL"):
    os.environ.pop(_name, None)
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_REGION="us-east-1",
    POWERTOOLS_TRACE_DISABLED="true",
    POWERTOOLS_SERVICE_NAME="lrnstak-test",
    POWERTOOLS_METRICS_NAMESPACE="lrnstak-test",
    AWS_MAX_ATTEMPTS="2",
)

import httpx  # noqa: E402
from moto import mock_aws  # noqa: E402 - after the environment above

from lrnstak.cache.service import get_cache_service  # noqa: E402
from lrnstak.jobs.service import get_job_service  # noqa: E402
from lrnstak.local.bootstrap import create_resources  # noqa: E402
from lrnstak.local.template import Template  # noqa: E402
from lrnstak.predict.batch import get_batch_prediction_service  # noqa: E402
from lrnstak.predict.service import get_model_cache, get_predict_service  # noqa: E402
from lrnstak.registry.service import get_registry_service  # noqa: E402
from lrnstak.settings import get_settings  # noqa: E402
from lrnstak.storage.clients import AwsClients, build_clients, get_clients  # noqa: E402
from lrnstak.trainer.service import get_trainer_service  # noqa: E402

from support.stack import RunningStack, start_stack  # noqa: E402


def reset_cached_wiring() -> None:
    """Settings, clients and services are built once per container; each test gets its own container."""
    get_settings.cache_clear()
    get_clients.cache_clear()
    get_registry_service.cache_clear()
    get_cache_service.cache_clear()
    get_trainer_service.cache_clear()
    get_predict_service.cache_clear()
    get_model_cache.cache_clear()
    get_job_service.cache_clear()
    get_batch_prediction_service.cache_clear()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsClients]:
    """A fresh moto account holding the template's bucket and tables, with the functions' environment set."""
    template = Template.load()
    with mock_aws():
        references = create_resources(template, build_clients(), "lrnstak-test")
        for function in template.functions():
            for variable, value in template.function_environment(function, references).items():
                if not variable.startswith("POWERTOOLS_"):
                    monkeypatch.setenv(variable, value)
        reset_cached_wiring()
        yield get_clients()
    reset_cached_wiring()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """The real local stack (`python -m lrnstak.local`), one per test module; it must stop cleanly."""
    running = start_stack(tmp_path_factory.mktemp("state"))
    yield running
    code = running.stop()
    assert code == 0, "\n".join(running.output[-60:])


@pytest.fixture
def http(stack: RunningStack) -> Iterator[httpx.Client]:
    with stack.client() as client:
        yield client
