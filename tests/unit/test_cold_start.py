"""What importing a function leaves in its process: the GC back on with the import's objects frozen
(lrnstak/cold_start.py), and no warning filter beyond those of a process that only imports scikit-learn: a
forest's predict re-applies every filter around each tree, so each one costs every prediction."""

import gc
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lrnstak.cold_start import ImportsPause

ROOT = Path(__file__).resolve().parents[2]

REPORT = """
import gc, io, json, sys, warnings
import numpy, scipy.special, sklearn.ensemble  # the filters any scikit-learn process has
baseline = len(warnings.filters)
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import app
print(json.dumps({
    "gc_enabled": gc.isenabled(),
    "frozen": gc.get_freeze_count(),
    "baseline": baseline,
    "filters": [[entry[0], getattr(entry[1], "pattern", None), entry[2].__name__] for entry in warnings.filters],
}))
"""


def imported(function: str) -> dict[str, object]:
    environment = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_TRACE_DISABLED": "1"}
    done = subprocess.run(
        [sys.executable, "-c", REPORT, str(ROOT / "functions" / function), str(ROOT / "src")],
        cwd=ROOT / "functions" / function,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    report: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


@pytest.fixture(scope="module")
def predict_function() -> dict[str, object]:
    return imported("predict")


def test_importing_a_function_leaves_the_gc_on_with_the_import_frozen(predict_function: dict[str, object]) -> None:
    assert predict_function["gc_enabled"] is True
    assert isinstance(predict_function["frozen"], int)
    assert predict_function["frozen"] > 100_000


@pytest.mark.parametrize("function", ["predict", "registry", "trainer", "cache", "jobs_worker"])
def test_a_function_adds_no_warning_filter_and_keeps_no_idle_ones(function: str) -> None:
    report = imported(function)
    filters = report["filters"]
    assert isinstance(filters, list)
    categories = {category for _, _, category in filters}
    assert not categories & {"InsecurePlatformWarning", "SecurityWarning"}  # urllib3's, dropped
    assert not [entry for entry in filters if entry[1] and "feature names" in entry[1]]
    assert not [entry for entry in filters if entry[1] and "application metrics" in entry[1]]
    assert len(filters) <= report["baseline"]  # type: ignore[operator]


@pytest.fixture
def collector_state() -> Iterator[None]:
    enabled, frozen_once = gc.isenabled(), ImportsPause._frozen_once
    yield
    ImportsPause._frozen_once = frozen_once
    gc.unfreeze()
    if enabled:
        gc.enable()
    else:
        gc.disable()


@pytest.mark.usefixtures("collector_state")
def test_a_pause_holds_the_gc_off_then_freezes_once() -> None:
    gc.enable()
    ImportsPause._frozen_once = False
    gc.unfreeze()
    first = ImportsPause()
    assert not gc.isenabled()
    first.end()
    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    assert frozen > 0
    gc.unfreeze()
    second = ImportsPause()
    assert not gc.isenabled()
    second.end()
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0  # frozen once per process only


@pytest.mark.usefixtures("collector_state")
def test_a_pause_leaves_a_gc_that_was_off_as_it_found_it() -> None:
    gc.disable()
    ImportsPause._frozen_once = False
    pause = ImportsPause()
    pause.end()
    assert not gc.isenabled()
    assert ImportsPause._frozen_once is False
