"""boto3 clients, created once per container and shared by every request."""

import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

import boto3
import botocore.session
import urllib3.exceptions
from botocore.config import Config
from botocore.loaders import Loader, create_loader

from lrnstak.settings import get_settings


def _drop_idle_warning_filters() -> None:
    """urllib3 and botocore install warning filters at import that do nothing in lrnstak, yet each costs every
    forest prediction: scikit-learn re-applies every filter of the process around each tree it calls, about
    0.3 ms per filter for a 100-tree forest's one-row prediction (benchmarks/README.md, the two "2026-12-08"
    sections). They go:
    - InsecurePlatformWarning, twice: urllib3 1.26 raises it only on a Python without ssl.SSLContext (before
      2.7.9), urllib3 2 never;
    - SecurityWarning, "always": urllib3 raises it for a request made with certificate checks turned off, which
      lrnstak never does (AWS over HTTPS with verification, the embedded AWS over plain HTTP). Were one raised,
      Python's default action would still show it."""
    filters = cast(list[Any], warnings.filters)  # typeshed says Sequence; it is the module's own list
    idle = (urllib3.exceptions.InsecurePlatformWarning, urllib3.exceptions.SecurityWarning)
    filters[:] = [entry for entry in filters if entry[2] not in idle]


_drop_idle_warning_filters()

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient as DynamoDBClient
    from mypy_boto3_s3 import S3Client as S3Client
    from mypy_boto3_sqs import SQSClient as SQSClient
else:
    DynamoDBClient = Any
    S3Client = Any
    SQSClient = Any


@dataclass(frozen=True)
class AwsClients:
    s3: S3Client
    dynamodb: DynamoDBClient
    sqs: SQSClient


def build_clients(max_attempts: int = 5, retry_mode: str = "standard") -> AwsClients:
    # AWS_ENDPOINT_URL (LocalStack, moto) and the region come from the environment, as boto3 reads them.
    # total_max_attempts counts the first try (botocore's max_attempts would count only the retries).
    retries: Any = {"total_max_attempts": max_attempts, "mode": retry_mode}
    config = Config(retries=retries, connect_timeout=5, read_timeout=30, max_pool_connections=32)
    s3_config = config.merge(Config(s3={"addressing_style": "path"}, signature_version="s3v4"))
    session = _session()
    return AwsClients(
        s3=session.client("s3", config=s3_config),
        dynamodb=session.client("dynamodb", config=config),
        sqs=session.client("sqs", config=config),
    )


@lru_cache(maxsize=1)
def _service_models() -> Loader:
    return create_loader()


def _session() -> boto3.session.Session:
    """A new session (credentials and settings read afresh) reading service models through one shared loader:
    each loader parses botocore's JSON models of S3, DynamoDB and SQS once (~0.1 s), whoever builds clients."""
    core = botocore.session.get_session()
    loader = _service_models()
    core.register_component("data_loader", loader)
    session = boto3.session.Session(botocore_session=core)
    # boto3 appends its own data folder to the loader's search path at every session: once is enough.
    loader.search_paths[:] = list(dict.fromkeys(loader.search_paths))
    return session


@lru_cache(maxsize=1)
def get_clients() -> AwsClients:
    settings = get_settings()
    return build_clients(settings.aws_max_attempts, settings.aws_retry_mode)


def drop_connections(clients: AwsClients) -> int:
    """Closes the clients' pooled connections (after a SnapStart restore they lead nowhere); the next call
    opens fresh ones. How many clients had a pool to close."""
    closed = 0
    for client in (clients.s3, clients.dynamodb, clients.sqs):
        # botocore keeps its urllib3 pools on the endpoint's HTTP session, which it offers no public handle to.
        session = getattr(getattr(client, "_endpoint", None), "http_session", None)
        close = getattr(session, "close", None)
        if callable(close):
            close()
            closed += 1
    return closed
