"""Many clients at once, over real HTTP against the local stack (`python -m lrnstak.local`, what `make run`
runs). Its embedded AWS applies one request at a time, as DynamoDB and S3 apply each request atomically, so
the races here are the ones the code meets in AWS: conditional writes that lose, transactions cancelled by a
concurrent one, pops of the same element.

- 16 clients upload the same version at once: the version ends as exactly one of the uploads, whole (the
  bytes served, their SHA-256 and the one the metadata records agree), and no replaced bytes are left behind;
- 16 clients upload 16 different versions at once: all 16 are there, each whole;
- 1,000 elements pushed to a list, then 16 clients popping until it is empty: every element is popped once.
  (The pushes, which only set the list up, run through CacheService in this process against the stack's
  embedded AWS: the same code without the HTTP hop, twice as fast. A pop costs the embedded AWS a Query that
  moto answers in time proportional to the list, so the 1,000 pops take most of this module's minute.)
"""

import base64
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import httpx
import pytest

from lrnstak.cache.service import CacheService
from lrnstak.local.template import local_physical_name
from lrnstak.storage.artifacts import ArtifactStore
from lrnstak.storage.cache_table import CacheTable

from support.models import joblib_bytes, linear_regression
from support.stack import RunningStack

CLIENTS = 16
ELEMENTS = 200  # tests/integration/test_cache_http.py pops 1,000 with 32 clients; this one adds the two-phase pop
PARAMETERS = {"target_label": "y", "feature_labels": ["a", "b", "c"]}
RESOURCE_PREFIX = os.environ.get("LRNSTAK_RESOURCE_PREFIX", "lrnstak")  # the local stack's default
# 503 (with Retry-After) is a legitimate answer under contention: the client comes back, as told.
RETRIES = 50


def embedded_aws_client(stack: RunningStack, service: str) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=stack.aws_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="module")
def bucket(stack: RunningStack) -> Iterator[tuple[Any, str]]:
    """An S3 client on the stack's embedded AWS and the models bucket, to look at what the functions wrote."""
    s3 = embedded_aws_client(stack, "s3")
    yield s3, local_physical_name("ModelsBucket", RESOURCE_PREFIX)
    s3.close()


def cache_service(stack: RunningStack) -> CacheService:
    """The cache function's service in this process, on its own clients to the stack's embedded AWS."""
    return CacheService(
        CacheTable(embedded_aws_client(stack, "dynamodb"), local_physical_name("CacheTable", RESOURCE_PREFIX)),
        ArtifactStore(embedded_aws_client(stack, "s3"), local_physical_name("ModelsBucket", RESOURCE_PREFIX)),
    )


def all_at_once[T](stack: RunningStack, work: Callable[[httpx.Client, int], T]) -> list[T]:
    """Runs work(client, index) for CLIENTS clients, each with its own connection, released together."""
    start = threading.Barrier(CLIENTS)

    def one(index: int) -> T:
        with stack.client() as client:
            start.wait(timeout=30)
            return work(client, index)

    with ThreadPoolExecutor(CLIENTS) as pool:
        return list(pool.map(one, range(CLIENTS)))


def with_retries(send: Callable[[], httpx.Response]) -> httpx.Response:
    for _ in range(RETRIES):
        response = send()
        if response.status_code != 503:
            return response
        assert response.headers.get("retry-after", "").isdigit(), response.headers
        time.sleep(0.05)
    return response


def model_bytes(seed: int) -> bytes:
    return joblib_bytes(linear_regression(seed))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def served(http: httpx.Client, model: str, version: str) -> tuple[str, str]:
    """The SHA-256 of the bytes GET serves and the one the metadata records."""
    download = http.get(f"/models/{model}/{version}")
    info = http.get(f"/models/{model}/{version}/info")
    assert (download.status_code, info.status_code) == (200, 200), (download.text, info.text)
    return sha(base64.b64decode(download.json()["model"])), str(info.json()["sha256"])


def artifact_keys(bucket: tuple[Any, str], model: str) -> list[str]:
    s3, name = bucket
    listed = s3.list_objects_v2(Bucket=name, Prefix=f"artifacts/{model}/")
    return sorted(entry["Key"] for entry in listed.get("Contents", []))


def test_16_clients_uploading_the_same_version_leave_exactly_one_of_them_whole(
    stack: RunningStack, http: httpx.Client, bucket: tuple[Any, str]
) -> None:
    model = "same-version"
    uploads = [model_bytes(seed) for seed in range(CLIENTS)]
    assert len({sha(data) for data in uploads}) == CLIENTS

    def upload(client: httpx.Client, index: int) -> httpx.Response:
        body = {"model": base64.b64encode(uploads[index]).decode(), "version": "v1", "parameters": PARAMETERS}
        return with_retries(lambda: client.post(f"/models/{model}", json=body))

    answers = all_at_once(stack, upload)
    assert [answer.status_code for answer in answers] == [200] * CLIENTS, [a.text for a in answers]
    assert [answer.json()["sha256"] for answer in answers] == [sha(data) for data in uploads]

    listed = http.get(f"/models/{model}").json()
    assert [entry["version"] for entry in listed["versions"]] == ["v1"]
    served_sha, recorded_sha = served(http, model, "v1")
    assert served_sha == recorded_sha
    assert served_sha in {sha(data) for data in uploads}
    # Every overwrite deleted the bytes it replaced: only the last one's are left.
    assert len(artifact_keys(bucket, model)) == 1, artifact_keys(bucket, model)


def test_16_clients_uploading_different_versions_all_land(
    stack: RunningStack, http: httpx.Client, bucket: tuple[Any, str]
) -> None:
    model = "many-versions"
    uploads = {f"v{index + 1}": model_bytes(100 + index) for index in range(CLIENTS)}

    def upload(client: httpx.Client, index: int) -> httpx.Response:
        version = f"v{index + 1}"
        body = {"model": base64.b64encode(uploads[version]).decode(), "version": version, "parameters": PARAMETERS}
        return with_retries(lambda: client.post(f"/models/{model}", json=body))

    answers = all_at_once(stack, upload)
    assert [answer.status_code for answer in answers] == [200] * CLIENTS, [a.text for a in answers]

    listed = http.get(f"/models/{model}").json()
    assert sorted(entry["version"] for entry in listed["versions"]) == sorted(uploads)
    summary = next(entry for entry in http.get("/models").json() if entry["model"] == model)
    assert sorted(summary["versions"]) == sorted(uploads)
    for version, data in uploads.items():
        assert served(http, model, version) == (sha(data), sha(data)), version
    assert len(artifact_keys(bucket, model)) == CLIENTS


def test_16_clients_popping_a_list_get_each_element_exactly_once(stack: RunningStack, http: httpx.Client) -> None:
    key = "shared-queue"
    pushed = list(range(ELEMENTS))

    services = [cache_service(stack) for _ in range(CLIENTS)]

    def push_share(index: int) -> None:
        for value in pushed[index::CLIENTS]:
            services[index].push_value(key, value)

    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(push_share, range(CLIENTS)))
    stored = http.get(f"/cache/{key}")
    assert stored.status_code == 200, stored.text
    assert sorted(stored.json()) == pushed

    def pop_until_empty(client: httpx.Client, index: int) -> list[int]:
        popped = []
        while True:
            answer = with_retries(lambda: client.get(f"/cache/pop/{key}"))
            if answer.status_code == 404:
                return popped
            assert answer.status_code == 200, answer.text
            popped.append(answer.json())

    per_client = all_at_once(stack, pop_until_empty)
    popped = [value for values in per_client for value in values]
    assert len(popped) == ELEMENTS, f"{len(popped)} pops for {ELEMENTS} elements"
    assert sorted(popped) == pushed  # each element exactly once: none lost, none twice
    assert sum(1 for values in per_client if values) > 1  # the clients really raced
    assert http.get(f"/cache/{key}").status_code == 404
