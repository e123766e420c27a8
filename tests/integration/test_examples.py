"""examples/ run as a user runs them, against the local stack."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.stack import ROOT, RunningStack, serving


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    with serving(tmp_path_factory.mktemp("examples-stack"), LRNSTAK_API_KEY="") as running:  # an open API
        yield running


def test_stock_prices_trains_the_symbols_model_and_predicts_the_next_days(stack: RunningStack) -> None:
    environment = {**os.environ, "LRNSTAK_API_URL": stack.url}
    environment.pop("LRNSTAK_API_KEY", None)
    script = Path(ROOT, "examples", "stock_prices.py")
    run = subprocess.run(
        [sys.executable, str(script), "--symbol", "TEST"], capture_output=True, text=True, env=environment, timeout=120
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("trained TEST_close v1 with ")
    assert "(testing mae " in lines[0]
    assert lines[1].split() == ["date", "open", "predicted", "close", "actual", "close"]
    predictions = [line.split() for line in lines[2:]]
    assert len(predictions) == 5
    for day, opened, predicted, actual in predictions:
        assert day.startswith("20")
        # the close is the open moved by about 1%: a model that learnt anything predicts within a few percent
        assert abs(float(predicted) - float(actual)) / float(actual) < 0.1
        assert float(opened) > 0
    with stack.client() as http:
        info = http.get("/models/TEST_close/v1/info").json()
    assert info["parameters"]["target_label"] == "close"
    assert info["metadata"] == {"symbol": "TEST"}
    scores = info["training_scores"]["scores"]
    assert {score["iteration"] for score in scores} == {1, 2}  # the hold-out and the testing_data
