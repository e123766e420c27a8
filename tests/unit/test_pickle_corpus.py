"""The corpus of hostile and broken model files: load_model refuses every one, and nothing happens.

Each case is built in code (tests/unit/pickles.py). A payload that runs code would create a sentinel file
in the test's tmp_path; test_live_payloads_run_under_stock_loaders shows that pickle.loads, joblib.load or
np.load does create it, so a missing sentinel after load_model means the loader refused the payload, not
that the payload was a dud. Cases that crash the interpreter when a defence is missing (C recursion, numpy
state, decision trees at predict) load in a child process, so that a regression fails a test instead of
killing pytest; test_crash_reproducers_kill_stock_loading shows that they do crash without load_model.
"""

import base64
import io
import json
import os
import pickle
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pickles
import pytest
from sklearn import ensemble, tree
from sklearn.datasets import load_diabetes, load_iris
from sklearn.pipeline import make_pipeline

from lrnstak.errors import InvalidModel, UnsafeModel
from lrnstak.ml.safe_loading import load_model
from lrnstak.storage.clients import AwsClients

from support.events import rest_v1_event
from support.functions import LambdaResponse, invoke

Builder = Callable[[Path], bytes]

# A refusal takes no longer than this, and traces no more memory: a bomb is refused before it goes off.
REFUSAL_SECONDS = 5.0
REFUSAL_TRACED_BYTES = 64 * 1024**2


@dataclass(frozen=True)
class Case:
    build: Builder
    refusal: type[InvalidModel]
    # Text the error's message or details must contain: what was refused.
    names: str
    # The stock loader that runs the payload ("pickle", "joblib" or "numpy"), where it is safe to let it.
    live: str | None = None
    # Crashes or hangs the interpreter if the loader lets it through: loaded in a child process.
    crashes: bool = False


CORPUS: dict[str, Case] = {
    # Calls of code outside the allowlist, by every opcode that calls.
    "REDUCE-posix.system": Case(pickles.posix_system, UnsafeModel, "posix.system", "pickle"),
    "GLOBAL-os.system-protocol-0": Case(pickles.os_system_protocol_0, UnsafeModel, "os.system", "pickle"),
    "INST-subprocess.check_output": Case(pickles.inst_check_output, UnsafeModel, "subprocess.check_output", "pickle"),
    "OBJ-subprocess.Popen": Case(pickles.obj_popen, UnsafeModel, "subprocess.Popen", "pickle"),
    "NEWOBJ_EX-subprocess.Popen": Case(pickles.newobj_ex_popen, UnsafeModel, "subprocess.Popen"),
    "STACK_GLOBAL-builtins.eval": Case(
        lambda sentinel: pickles.stack_global_call("builtins", "eval", pickles.writes_sentinel(sentinel)),
        UnsafeModel,
        "builtins.eval",
        "pickle",
    ),
    "builtins.exec": Case(pickles.builtins_exec, UnsafeModel, "builtins.exec", "pickle"),
    "builtins.open": Case(
        lambda sentinel: pickles.stack_global_call("builtins", "open", str(sentinel), "w"),
        UnsafeModel,
        "builtins.open",
        "pickle",
    ),
    "getattr-of-__import__": Case(
        pickles.getattr_import_chain, UnsafeModel, "builtins.getattr, builtins.__import__", "pickle"
    ),
    "importlib.import_module": Case(pickles.import_module, UnsafeModel, "importlib.import_module", "pickle"),
    "runpy.run_path": Case(pickles.run_path, UnsafeModel, "runpy.run_path", "pickle"),
    "runpy.run_module": Case(pickles.run_module, UnsafeModel, "runpy.run_module", "pickle"),
    "pty.spawn": Case(pickles.pty_spawn, UnsafeModel, "pty.spawn"),
    "webbrowser.open": Case(pickles.webbrowser_open, UnsafeModel, "webbrowser.open"),
    "operator.methodcaller-chain": Case(
        pickles.methodcaller_chain, UnsafeModel, "operator.methodcaller, builtins.__import__", "pickle"
    ),
    "operator.attrgetter-chain": Case(
        pickles.attrgetter_chain, UnsafeModel, "operator.attrgetter, builtins.__import__", "pickle"
    ),
    "functools.partial-of-os.system": Case(
        pickles.partial_os_system, UnsafeModel, "functools.partial, posix.system", "pickle"
    ),
    "sklearn-function-writing-files": Case(pickles.sklearn_function, UnsafeModel, "dump_svmlight_file", "pickle"),
    "dotted-name-sklearn.os.system": Case(
        lambda sentinel: pickles.dotted_stack_global(sentinel, "sklearn", "os.system"),
        UnsafeModel,
        "sklearn.os.system",
        "pickle",
    ),
    # Allowlisted classes given dangerous state.
    "estimator-whose-predict-is-os.system": Case(pickles.estimator_with_system_predict, UnsafeModel, "posix.system"),
    "attributes-set-on-a-class": Case(
        lambda sentinel: pickles.build_on_class("sklearn._loss.link", "IdentityLink", "inverse", "builtins", "str"),
        UnsafeModel,
        "setting attributes of sklearn._loss.link.IdentityLink",
    ),
    "DistanceMetric-calling-a-function": Case(pickles.pyfunc_distance, UnsafeModel, "PyFuncDistance64"),
    "SETITEM-on-an-array": Case(pickles.setitem_on_array, UnsafeModel, "adding items to a ndarray"),
    "SeedSequence-chain": Case(pickles.seed_sequence_chain, UnsafeModel, "SeedSequence state"),
    # Memo tricks: an allowed global's memo slot reused for a refused one.
    "memo-PUT-GET-protocol-0": Case(pickles.memo_put_get_protocol_0, UnsafeModel, "os.system", "pickle"),
    "memo-MEMOIZE-BINPUT-protocol-4": Case(pickles.memo_alias_protocol_4, UnsafeModel, "posix.system", "pickle"),
    "memo-GET-of-an-empty-slot": Case(pickles.memo_get_of_nothing, InvalidModel, "Memo value not found"),
    # Pickles inside pickles: numpy object arrays, joblib's nested pickles, np.load.
    "object-array-in-a-pickle": Case(pickles.plain_object_array, UnsafeModel, "builtins.exec", "pickle"),
    "joblib-object-array": Case(pickles.object_array_posix_system, UnsafeModel, "posix.system", "joblib"),
    "joblib-object-array-in-object-array": Case(
        pickles.object_array_in_object_array, UnsafeModel, "posix.system", "joblib"
    ),
    "npy-file-of-pickled-objects": Case(
        pickles.npy_with_pickled_objects, InvalidModel, "not a joblib or pickle file", "numpy"
    ),
    "numpy.load-allow_pickle": Case(pickles.numpy_load_allow_pickle, UnsafeModel, "numpy.load", "pickle"),
    **{
        f"joblib-{method}-compressed-exec": Case(
            lambda sentinel, method=method: pickles.compressed_exec(sentinel, method),
            UnsafeModel,
            "builtins.exec",
            "joblib",
        )
        for method in ("zlib", "gzip", "lzma")
    },
    # Not model files at all.
    "empty": Case(lambda sentinel: b"", InvalidModel, "empty"),
    "garbage": Case(lambda sentinel: np.random.default_rng(7).bytes(4096), InvalidModel, "not a joblib or pickle file"),
    # Allocations asked for without the bytes: refused before anything is allocated.
    "empty-array-of-8-TB": Case(pickles.reconstruct_huge_array, InvalidModel, "8000000000000 bytes"),
    "bytes(10**12)": Case(pickles.bytes_of_size, UnsafeModel, "calling builtins.bytes with (int)"),
    "bytearray(10**12)": Case(pickles.bytearray_of_size, UnsafeModel, "calling builtins.bytearray with (int)"),
    "list(range(10**12))": Case(pickles.list_of_range, UnsafeModel, "calling builtins.list with (range)"),
    "BYTEARRAY8-of-a-terabyte": Case(pickles.bytearray8_claim, InvalidModel, "truncated"),
    "Tree-with-10**12-outputs": Case(pickles.tree_with_huge_outputs, UnsafeModel, "calling sklearn.tree._tree.Tree"),
    "lil_matrix-of-10**9-rows": Case(pickles.sparse_matrix_of_shape, UnsafeModel, "lil_matrix with (tuple)"),
    "array-state-claiming-10**12-items": Case(pickles.array_state_claiming_items, UnsafeModel, "does not hold them"),
    "doubling-tuple-key": Case(pickles.doubling_tuple_key, UnsafeModel, "hashing steps per byte"),
    "str-of-doubling-list": Case(pickles.doubling_list_text, UnsafeModel, "calling builtins.str with (list)"),
    "300000-nested-tuples": Case(pickles.nested_tuples, InvalidModel, "no predict method"),
    # Crash the interpreter while loading.
    "million-nested-tuples-as-key": Case(pickles.nested_tuple_key, UnsafeModel, "nested more than", crashes=True),
    "object-array-missing-items": Case(
        pickles.object_array_missing_items, UnsafeModel, "does not hold them", crashes=True
    ),
    "object-field-flagged-plain": Case(
        pickles.object_fields_flagged_plain, UnsafeModel, "does not hold them", crashes=True
    ),
    "subarray-wider-than-its-item": Case(
        pickles.subarray_wider_than_item, UnsafeModel, "numpy dtype state", crashes=True
    ),
    "nested-object-arrays": Case(pickles.nested_object_arrays, UnsafeModel, "nested more than", crashes=True),
    "nested-dtypes": Case(pickles.nested_dtypes, UnsafeModel, "nested more than", crashes=True),
    # Allowlisted trees that crash or hang prediction.
    "tree-child-out-of-range": Case(pickles.tree_child_out_of_range, UnsafeModel, "node 0", crashes=True),
    "tree-feature-out-of-range": Case(pickles.tree_feature_out_of_range, UnsafeModel, "feature", crashes=True),
    "tree-cycle": Case(pickles.tree_cycle, UnsafeModel, "node 0", crashes=True),
    "tree-shared-child": Case(pickles.tree_shared_child, UnsafeModel, "do not form a tree", crashes=True),
    "tree-without-nodes": Case(pickles.tree_without_nodes, UnsafeModel, "0 nodes", crashes=True),
    "tree-state-set-twice": Case(pickles.tree_state_twice, UnsafeModel, "state of a Tree twice", crashes=True),
    "tree-without-n_features_in_": Case(
        pickles.tree_without_feature_count, UnsafeModel, "how many features", crashes=True
    ),
    "forest-tree-on-more-features": Case(
        pickles.forest_tree_on_more_features, UnsafeModel, "splits on 10 features", crashes=True
    ),
    "boosting-stage-too-wide": Case(pickles.boosting_stage_too_wide, UnsafeModel, "trees per stage", crashes=True),
    "boosting-tree-child-out-of-range": Case(
        pickles.boosting_tree_child_out_of_range, UnsafeModel, "node 0", crashes=True
    ),
    "hist-predictor-child-out-of-range": Case(
        pickles.hist_predictor_child_out_of_range, UnsafeModel, "_predictors[1][2]", crashes=True
    ),
    "hist-predictor-feature-out-of-range": Case(
        pickles.hist_predictor_feature_out_of_range, UnsafeModel, "feature 4", crashes=True
    ),
    "hist-marked-as-fitting": Case(pickles.hist_marked_as_fitting, UnsafeModel, "marked as fitting", crashes=True),
}

IN_PROCESS = [name for name, case in CORPUS.items() if not case.crashes]
LIVE = [name for name, case in CORPUS.items() if case.live]


@pytest.fixture(autouse=True)
def importable_payloads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """run_module and import_module find the payload module next to the sentinel, and import it afresh."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lrnstak_corpus_payload", raising=False)


def run_stock_loader(data: bytes, loader: str) -> None:
    if loader == "joblib":
        result = joblib.load(io.BytesIO(data))
    elif loader == "numpy":
        result = np.load(io.BytesIO(data), allow_pickle=True)
    else:
        result = pickle.loads(data)
    if isinstance(result, subprocess.Popen):
        result.wait()
    if isinstance(result, io.IOBase):
        result.close()


def refusal_text(error: InvalidModel) -> str:
    return error.message + json.dumps(error.details)


@pytest.mark.parametrize("name", LIVE)
def test_live_payloads_run_under_stock_loaders(tmp_path: Path, name: str) -> None:
    sentinel = tmp_path / "pwned"
    run_stock_loader(CORPUS[name].build(sentinel), CORPUS[name].live or "pickle")
    assert sentinel.exists()


@pytest.mark.parametrize("name", IN_PROCESS)
def test_corpus_is_refused_without_side_effects(tmp_path: Path, name: str) -> None:
    case = CORPUS[name]
    sentinel = tmp_path / "pwned"
    data = case.build(sentinel)
    files_before = sorted(tmp_path.rglob("*"))
    environment_before = dict(os.environ)
    tracemalloc.start()
    started = time.thread_time()  # CPU time of this thread: what the refusal costs, whatever else runs
    try:
        with pytest.raises(InvalidModel) as raised:
            load_model(data)
        elapsed = time.thread_time() - started
        _, traced_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert type(raised.value) is case.refusal, refusal_text(raised.value)
    assert case.names in refusal_text(raised.value)
    time.sleep(0.05)  # a process that had been started would need a moment to create the sentinel
    assert not sentinel.exists()
    assert sorted(tmp_path.rglob("*")) == files_before
    assert dict(os.environ) == environment_before
    assert elapsed < REFUSAL_SECONDS
    assert traced_peak < REFUSAL_TRACED_BYTES


# The child loads every crashing case and reports each refusal as a JSON line. A case the loader lets
# through is then predicted on, which is where trees crash; a crash shows as the child's exit status.
CHILD = """
import json, pathlib, sys
from sklearn.datasets import load_iris
from lrnstak.ml.safe_loading import load_model

rows = load_iris(return_X_y=True)[0][:5]
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.model")):
    print(json.dumps({"case": path.stem, "started": True}), flush=True)
    try:
        model = load_model(path.read_bytes()).estimator
    except Exception as error:
        text = error.message + json.dumps(error.details) if hasattr(error, "message") else str(error)
        print(json.dumps({"case": path.stem, "refusal": type(error).__name__, "text": text}), flush=True)
    else:
        model.predict(rows)
        print(json.dumps({"case": path.stem, "refusal": None}), flush=True)
"""


def run_child(script: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_crashing_corpus_is_refused_in_a_child_process(tmp_path: Path) -> None:
    crashing = {name: case for name, case in CORPUS.items() if case.crashes}
    sentinel = tmp_path / "pwned"
    for name, case in crashing.items():
        (tmp_path / f"{name}.model").write_bytes(case.build(sentinel))
    child = run_child(CHILD, str(tmp_path))
    reports = [json.loads(line) for line in child.stdout.splitlines()]
    started = [report["case"] for report in reports if report.get("started")]
    assert child.returncode == 0, f"the child died ({child.returncode}) loading {started[-1:]}: {child.stderr[-2000:]}"
    refusals = {report["case"]: report for report in reports if "refusal" in report}
    assert refusals.keys() == crashing.keys()
    for name, case in crashing.items():
        assert refusals[name]["refusal"] == case.refusal.__name__, (name, refusals[name])
        assert case.names in refusals[name]["text"], (name, refusals[name])
    assert not sentinel.exists()


# What each reproducer needs after pickle.loads to crash: most crash inside it.
STOCK = {
    "million-nested-tuples-as-key": "",
    "object-array-missing-items": "",
    "object-field-flagged-plain": "repr(model)",
    "nested-object-arrays": "del model",
    "nested-dtypes": "import numpy; numpy.zeros(1, model)",
    "tree-child-out-of-range": "from sklearn.datasets import load_iris; model.predict(load_iris(return_X_y=True)[0])",
}


@pytest.mark.parametrize("name", list(STOCK))
def test_crash_reproducers_kill_stock_loading(tmp_path: Path, name: str) -> None:
    path = tmp_path / "model.pickle"
    path.write_bytes(CORPUS[name].build(tmp_path / "pwned"))
    script = f"import pickle, sys\nmodel = pickle.loads(open(sys.argv[1], 'rb').read())\n{STOCK[name]}\n"
    child = run_child(script, str(path), timeout=120)
    assert child.returncode < 0, f"pickle.loads survived {name}: {child.returncode} {child.stderr[-500:]}"


# --- Truncated files -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_model() -> Any:
    return ensemble.RandomForestClassifier(n_estimators=2, random_state=0).fit(*load_iris(return_X_y=True))


def serialized(model: Any, fmt: str) -> bytes:
    kind, _, level = fmt.partition("-")
    if kind == "pickle":
        return pickle.dumps(model, protocol=int(level))
    return pickles.joblib_dump(model, compress=(level, 3) if level else 0)


# Where each file is cut: its first byte, a quarter, half, three quarters, and all but its last byte. A
# compressed file cut in its checksum trailer still inflates to the whole pickle, so those keep half.
CUTS = {
    **{f"pickle-{protocol}": (1, 0.25, 0.5, 0.75, -1) for protocol in range(6)},
    "joblib": (1, 0.25, 0.5, 0.75, -1),
    "joblib-zlib": (1, 0.25, 0.5),
    "joblib-lzma": (1, 0.25, 0.5),
}


@pytest.mark.parametrize(("fmt", "cut"), [(fmt, cut) for fmt, cuts in CUTS.items() for cut in cuts])
def test_truncated_files_are_invalid(small_model: Any, fmt: str, cut: float) -> None:
    data = serialized(small_model, fmt)
    end = cut if isinstance(cut, int) else int(len(data) * cut)
    with pytest.raises(InvalidModel) as raised:
        load_model(data[:end])
    assert type(raised.value) is InvalidModel
    assert "not a joblib or pickle file" in raised.value.message


# --- Legitimate trees still load and predict the same ----------------------------------------------------

TREE_MODELS: dict[str, Callable[[], Any]] = {
    "best-first-tree": lambda: tree.DecisionTreeClassifier(max_leaf_nodes=9, random_state=0),
    "pruned-tree": lambda: tree.DecisionTreeClassifier(ccp_alpha=0.01, random_state=0),
    "stump": lambda: tree.DecisionTreeClassifier(max_depth=1),
    "extra-tree": lambda: tree.ExtraTreeClassifier(max_features=2, random_state=0),
    "forest": lambda: ensemble.RandomForestClassifier(n_estimators=20, random_state=0),
    "isolation-forest": lambda: ensemble.IsolationForest(n_estimators=10, max_features=2, random_state=0),
    "embedding-pipeline": lambda: make_pipeline(
        ensemble.RandomTreesEmbedding(n_estimators=5, random_state=0), tree.DecisionTreeClassifier(random_state=0)
    ),
    "boosting-multiclass": lambda: ensemble.GradientBoostingClassifier(n_estimators=5, random_state=0),
    "boosting-with-init": lambda: ensemble.GradientBoostingClassifier(
        n_estimators=5, init=tree.DecisionTreeClassifier(max_depth=2), random_state=0
    ),
    "hist-boosting": lambda: ensemble.HistGradientBoostingClassifier(max_iter=5, random_state=0),
}
TAKE_MISSING_VALUES = {"best-first-tree", "pruned-tree", "stump", "forest", "hist-boosting"}
REGRESSION_MODELS: dict[str, Callable[[], Any]] = {
    "multi-output-tree": lambda: tree.DecisionTreeRegressor(max_depth=6, random_state=0),
    "boosting-regressor": lambda: ensemble.GradientBoostingRegressor(n_estimators=5, random_state=0),
    "hist-boosting-regressor": lambda: ensemble.HistGradientBoostingRegressor(max_iter=5, random_state=0),
}


@pytest.fixture(scope="module")
def fitted_trees() -> dict[str, tuple[Any, np.ndarray]]:
    features, labels = load_iris(return_X_y=True)
    gappy = features.copy()
    gappy[::7, 1] = np.nan  # missing values send rows down each node's missing side
    models = {}
    for name, make in TREE_MODELS.items():
        rows = gappy if name in TAKE_MISSING_VALUES else features
        models[name] = (make().fit(rows, labels), rows)
    x, y = load_diabetes(return_X_y=True)
    targets = {"multi-output-tree": np.c_[y, -y]}
    for name, make in REGRESSION_MODELS.items():
        models[name] = (make().fit(x, targets.get(name, y)), x)
    return models


@pytest.mark.parametrize("fmt", ["pickle-5", "joblib-zlib"])
@pytest.mark.parametrize("name", [*TREE_MODELS, *REGRESSION_MODELS])
def test_trees_sklearn_builds_load_and_predict_the_same(
    fitted_trees: dict[str, tuple[Any, np.ndarray]], name: str, fmt: str
) -> None:
    model, rows = fitted_trees[name]
    loaded = load_model(serialized(model, fmt))
    assert loaded.warnings == ()
    assert np.array_equal(loaded.estimator.predict(rows), model.predict(rows))
    if hasattr(model, "predict_proba"):
        assert np.array_equal(loaded.estimator.predict_proba(rows), model.predict_proba(rows))


# --- Through the registry's upload route -----------------------------------------------------------------

REGISTRY = "RegistryFunction"
THROUGH_THE_REGISTRY = [
    "REDUCE-posix.system",
    "memo-MEMOIZE-BINPUT-protocol-4",
    "joblib-zlib-compressed-exec",
    "bytes(10**12)",
    "empty-array-of-8-TB",
    "doubling-tuple-key",
    "tree-child-out-of-range",
    "hist-predictor-child-out-of-range",
    "garbage",
]


def call(method: str, path: str, body: Any = None) -> LambdaResponse:
    event = rest_v1_event(method, path, body)
    event["requestContext"]["requestId"] = "corpus-request"
    return invoke(REGISTRY, event)


@pytest.mark.parametrize("name", THROUGH_THE_REGISTRY)
def test_upload_route_answers_422_and_registers_nothing(aws: AwsClients, tmp_path: Path, name: str) -> None:
    case = CORPUS[name]
    sentinel = tmp_path / "pwned"
    body = {"model": base64.b64encode(case.build(sentinel)).decode(), "parameters": {"feature_labels": ["a"]}}
    response = call("POST", "/models/hostile", body)
    assert response.status == 422, response.raw_body
    answer = response.json()
    assert set(answer) == {"error", "request_id"}
    assert set(answer["error"]) == {"code", "message", "details"}
    assert answer["request_id"] == "corpus-request"
    assert answer["error"]["code"] == ("unsafe_model" if case.refusal is UnsafeModel else "invalid_model")
    assert case.names in answer["error"]["message"] + json.dumps(answer["error"]["details"])
    assert call("GET", "/models/hostile").status == 404
    assert aws.s3.list_objects_v2(Bucket=os.environ["MODELS_BUCKET"]).get("KeyCount") == 0
    assert not sentinel.exists()
