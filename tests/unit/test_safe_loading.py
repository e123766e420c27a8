"""load_model: real models survive every serialization; hostile pickles are refused before they run."""

import copyreg
import io
import os
import pickle
import pickletools
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import scipy.sparse
import sklearn
from joblib.numpy_pickle import NumpyArrayWrapper
from joblib.numpy_pickle_compat import NDArrayWrapper
from pickles import (
    Call,
    bare_global,
    build_on_class,
    builtins_eval,
    builtins_exec,
    compressed_posix_system,
    dotted_stack_global,
    extension_code,
    getattr_import_chain,
    import_module_chain,
    import_side_effect_module,
    inst_opcode,
    joblib_dump,
    obj_opcode,
    object_array_posix_system,
    os_system_protocol_0,
    persistent_id,
    pipeline_with_os_system,
    posix_system,
    python2_eval,
    several_globals,
    sklearn_function,
    stack_global_getattr_chain,
    subprocess_popen,
)
from sklearn import ensemble, linear_model, naive_bayes, neighbors, neural_network, svm, tree
from sklearn._loss.link import IdentityLink
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes, load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.metrics._dist_metrics import ManhattanDistance64
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from lrnstak.errors import ArtifactIntegrityError, InvalidModel, UnsafeModel
from lrnstak.ml import safe_loading
from lrnstak.ml.safe_loading import LoadedModel, dump_model, load_model, sha256_hex

COMPRESSIONS = ["zlib", "gzip", "bz2", "lzma", "xz"]
FORMATS = ["joblib-0", "joblib-3", *(f"pickle-{protocol}" for protocol in range(6))]

Fitted = dict[str, tuple[Any, Any]]


def serialize(obj: Any, fmt: str) -> bytes:
    kind, level = fmt.split("-")
    if kind == "joblib":
        return joblib_dump(obj, compress=int(level))
    return pickle.dumps(obj, protocol=int(level))


# --- Round trips -------------------------------------------------------------------------------------

CLASSIFIERS: dict[str, Callable[[], Any]] = {
    "LogisticRegression": lambda: linear_model.LogisticRegression(max_iter=500),
    "DecisionTreeClassifier": lambda: tree.DecisionTreeClassifier(random_state=0),
    "RandomForestClassifier": lambda: ensemble.RandomForestClassifier(n_estimators=3, random_state=0),
    "ExtraTreesClassifier": lambda: ensemble.ExtraTreesClassifier(n_estimators=3, random_state=0),
    "GradientBoostingClassifier": lambda: ensemble.GradientBoostingClassifier(n_estimators=3, random_state=0),
    "HistGradientBoostingClassifier": lambda: ensemble.HistGradientBoostingClassifier(max_iter=3, random_state=0),
    "KNeighborsClassifier": lambda: neighbors.KNeighborsClassifier(),
    "KNeighborsClassifier-ball_tree": lambda: neighbors.KNeighborsClassifier(algorithm="ball_tree"),
    "SVC": lambda: svm.SVC(probability=True, random_state=0),
    "GaussianNB": lambda: naive_bayes.GaussianNB(),
    "MLPClassifier": lambda: neural_network.MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0),
}
REGRESSORS: dict[str, Callable[[], Any]] = {
    "LinearRegression": lambda: linear_model.LinearRegression(),
    "Ridge": lambda: linear_model.Ridge(),
    "Lasso": lambda: linear_model.Lasso(),
    "ElasticNet": lambda: linear_model.ElasticNet(),
    "DecisionTreeRegressor": lambda: tree.DecisionTreeRegressor(random_state=0),
    "RandomForestRegressor": lambda: ensemble.RandomForestRegressor(n_estimators=3, random_state=0),
    "ExtraTreesRegressor": lambda: ensemble.ExtraTreesRegressor(n_estimators=3, random_state=0),
    "GradientBoostingRegressor": lambda: ensemble.GradientBoostingRegressor(n_estimators=3, random_state=0),
    "HistGradientBoostingRegressor": lambda: ensemble.HistGradientBoostingRegressor(max_iter=3, random_state=0),
    "KNeighborsRegressor": lambda: neighbors.KNeighborsRegressor(),
    "SVR": lambda: svm.SVR(),
    "MLPRegressor": lambda: neural_network.MLPRegressor(hidden_layer_sizes=(8,), max_iter=20, random_state=0),
}
MODEL_NAMES = [*CLASSIFIERS, *REGRESSORS, "Pipeline", "SVC-sparse"]


def mixed_rows() -> tuple[np.ndarray, list[int]]:
    """Two numeric columns and a string column, with gaps in each."""
    rows = np.array(
        [
            [1.0, 0.5, "red"],
            [2.0, np.nan, "green"],
            [np.nan, 1.5, np.nan],
            [4.0, 2.0, "red"],
            [5.0, 2.5, "blue"],
            [6.0, 3.0, "green"],
            [7.0, np.nan, "blue"],
            [8.0, 4.0, "purple"],
        ],
        dtype=object,
    )
    return rows, [0, 1, 0, 1, 0, 1, 1, 0]


def mixed_pipeline() -> Pipeline:
    numeric = Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())])
    categorical = Pipeline(
        [("impute", SimpleImputer(strategy="most_frequent")), ("encode", OneHotEncoder(handle_unknown="ignore"))]
    )
    columns = ColumnTransformer([("numeric", numeric, [0, 1]), ("categorical", categorical, [2])])
    forest = ensemble.RandomForestClassifier(n_estimators=3, random_state=0)
    return Pipeline([("prepare", columns), ("model", forest)])


@pytest.fixture(scope="module")
def fitted() -> Fitted:
    """Each model fitted once on tiny bundled data, with the rows to predict on."""
    iris_x, iris_y = load_iris(return_X_y=True)
    diabetes_x, diabetes_y = load_diabetes(return_X_y=True)
    diabetes_x, diabetes_y = diabetes_x[:120], diabetes_y[:120]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # SVC(probability=True) is deprecated in sklearn 1.9 but still what clients upload.
        warnings.filterwarnings("ignore", "The `probability` parameter", FutureWarning)
        models = {name: (make().fit(iris_x, iris_y), iris_x) for name, make in CLASSIFIERS.items()}
        models |= {name: (make().fit(diabetes_x, diabetes_y), diabetes_x) for name, make in REGRESSORS.items()}
    rows, labels = mixed_rows()
    unseen = np.array([[3.0, np.nan, "never-seen"]], dtype=object)
    models["Pipeline"] = (mixed_pipeline().fit(rows, labels), np.concatenate([rows, unseen]))
    # Fitted on sparse input, SVC keeps its support vectors as a scipy sparse matrix.
    sparse_x = scipy.sparse.csr_matrix(iris_x)
    models["SVC-sparse"] = (svm.SVC(random_state=0).fit(sparse_x, iris_y), sparse_x)
    return models


def assert_predicts_the_same(loaded: Any, original: Any, rows: Any) -> None:
    assert type(loaded) is type(original)
    assert np.array_equal(loaded.predict(rows), original.predict(rows))
    if hasattr(original, "predict_proba"):
        assert np.array_equal(loaded.predict_proba(rows), original.predict_proba(rows))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_round_trip_predicts_exactly_the_same(fitted: Fitted, name: str, fmt: str) -> None:
    model, rows = fitted[name]
    loaded = load_model(serialize(model, fmt))
    assert_predicts_the_same(loaded.estimator, model, rows)
    assert loaded.sklearn_version == sklearn.__version__
    assert loaded.warnings == ()


def test_sparse_support_vectors_stay_sparse(fitted: Fitted) -> None:
    model, _ = fitted["SVC-sparse"]
    loaded = load_model(joblib_dump(model)).estimator
    assert scipy.sparse.issparse(loaded.support_vectors_)
    assert (loaded.support_vectors_ != model.support_vectors_).nnz == 0


@pytest.mark.parametrize("method", COMPRESSIONS)
def test_every_joblib_compression_loads(fitted: Fitted, method: str) -> None:
    model, rows = fitted["Pipeline"]
    loaded = load_model(joblib_dump(model, compress=(method, 3)))
    assert_predicts_the_same(loaded.estimator, model, rows)


def test_dump_model_writes_compressed_joblib_that_loads(fitted: Fitted) -> None:
    model, rows = fitted["RandomForestClassifier"]
    data = dump_model(model)
    assert data[:1] == b"\x78"  # zlib, what joblib's compress=3 means
    assert_predicts_the_same(joblib.load(io.BytesIO(data)), model, rows)
    assert_predicts_the_same(load_model(data).estimator, model, rows)


@pytest.mark.parametrize("compress", [0, 3])
def test_object_dtype_array_in_joblib_file_loads(compress: int) -> None:
    values = np.array(["a", 1, None, 2.5, ("nested", b"bytes")], dtype=object)
    loaded = load_model(joblib_dump({"values": values}, compress=compress), require_predict=False).estimator
    assert loaded["values"].dtype == object
    assert loaded["values"].tolist() == values.tolist()


@pytest.mark.parametrize("compress", [0, 3])
def test_array_layouts_survive_joblib(compress: int) -> None:
    arrays = {
        "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
        "big_endian": np.arange(5, dtype=">i8"),
        "structured": np.array([(1, 2.5)], dtype=[("a", "<i4"), ("b", "<f8")]),
        "empty": np.empty((0, 3)),
        "zero_d": np.array(7.0),
    }
    loaded = load_model(joblib_dump(arrays, compress=compress), require_predict=False).estimator
    for name, array in arrays.items():
        assert np.array_equal(loaded[name], array), name
        assert loaded[name].shape == array.shape, name
        assert loaded[name].flags.writeable, name
    assert loaded["big_endian"].dtype.isnative
    assert loaded["fortran"].flags.f_contiguous


def test_sparse_arrays_load() -> None:
    matrix = scipy.sparse.csr_array(np.eye(3))
    loaded = load_model(joblib_dump(matrix), require_predict=False).estimator
    assert type(loaded) is scipy.sparse.csr_array
    assert (loaded != matrix).nnz == 0


# The loader rebuilds every pickled dtype with numpy's own constructor and checks every array's state:
# whatever numpy can pickle must still come back as pickle.loads gives it.
NUMPY_VALUES: dict[str, Any] = {
    "object-field": np.array([(1, "x"), (2, None)], dtype=[("a", "<i8"), ("b", "O")]),
    "aligned-struct": np.array([(1, 2.5)], dtype=np.dtype([("x", "<i4"), ("y", "<f8")], align=True)),
    "subarray-field": np.arange(8, dtype="<f4").view([("v", "<f4", (3,)), ("n", "<f4")]),
    "nested-struct": np.zeros(2, dtype=[("inner", [("p", "<i2"), ("q", ">f8")]), ("s", "S3")]),
    "titled-field": np.ones(1, dtype={"names": ["a"], "formats": ["<f8"], "titles": ["Alpha"]}),
    "datetime": np.array(["2024-01-02T03:04"], dtype="datetime64[m]"),
    "timedelta": np.array([5], dtype="timedelta64[ns]"),
    "text": np.array(["héllo", "x"]),
    "bytes": np.array([b"ab", b"c"]),
    "object-2d": np.array([["a", 1], [None, 2.5]], dtype=object),
    "float16": np.array([1.5], dtype=np.float16),
    "complex": np.array([1 + 2j]),
    "float-scalar": np.float32(3.5),
    "void-scalar": np.array([(7,)], dtype=[("a", "<i4")])[0],
    "dtype-alone": np.dtype([("when", "M8[s]"), ("what", "U4")]),
}


@pytest.mark.parametrize("protocol", range(6))
@pytest.mark.parametrize("name", NUMPY_VALUES)
def test_numpy_values_load_as_pickle_gives_them(name: str, protocol: int) -> None:
    data = pickle.dumps(NUMPY_VALUES[name], protocol=protocol)
    loaded, expected = load_model(data, require_predict=False).estimator, pickle.loads(data)
    assert type(loaded) is type(expected)
    if isinstance(expected, np.dtype):
        assert loaded == expected
        assert loaded.flags == expected.flags
        return
    assert loaded.dtype == expected.dtype
    assert loaded.shape == expected.shape
    if expected.dtype.hasobject:
        assert loaded.tolist() == expected.tolist()
    else:
        assert loaded.tobytes() == expected.tobytes()


def test_keys_a_model_holds_cost_nothing_near_the_budget() -> None:
    # A text model's vocabulary is a large dict of short strings; tuples, sets and slices appear too.
    rng = np.random.default_rng(0)
    vocabulary = {f"word{index}": int(index) for index in rng.permutation(200_000)}
    keyed = {(1, "a"): 1, frozenset({2, 3}): 2, (1, (2, (3, 4))): 3, 10**30: 4}
    for data in (pickle.dumps(vocabulary, protocol=4), joblib_dump(vocabulary, compress=3), pickle.dumps(keyed)):
        assert load_model(data, require_predict=False).estimator in (vocabulary, keyed)


@pytest.mark.parametrize(
    ("module", "name", "expected"),
    [
        ("numpy", "float64", np.float64),
        ("numpy.dtypes", "Float64DType", np.dtypes.Float64DType),
        ("scipy.sparse._csr", "csr_matrix", scipy.sparse.csr_matrix),
        ("sklearn.linear_model._base", "LinearRegression", linear_model.LinearRegression),
        ("sklearn._loss.link", "IdentityLink", IdentityLink),
        ("sklearn.metrics._dist_metrics", "ManhattanDistance64", ManhattanDistance64),
        ("__builtin__", "set", set),
        ("copy_reg", "_reconstructor", copyreg._reconstructor),
        ("numpy.core.multiarray", "_reconstruct", np._core.multiarray._reconstruct),
    ],
)
def test_allowlisted_globals_resolve_to_the_real_object(module: str, name: str, expected: object) -> None:
    loaded = load_model(bare_global(module, name), require_predict=False)
    assert loaded.estimator is expected
    # numpy 1.x names go straight to numpy._core, without the numpy.core shim's deprecation warning.
    assert loaded.warnings == ()


# --- Versions and warnings ---------------------------------------------------------------------------


def test_fresh_model_reports_the_running_sklearn_and_no_warnings(fitted: Fitted) -> None:
    loaded = load_model(joblib_dump(fitted["Ridge"][0]))
    assert loaded == LoadedModel(loaded.estimator, sklearn.__version__, ())


def test_model_from_another_sklearn_reports_its_version_and_warnings(fitted: Fitted) -> None:
    model, rows = fitted["RandomForestClassifier"]
    running = sklearn.__version__
    other = "0." + "9" * (len(running) - 2)  # same length, so the pickle's framing stays valid
    data = pickle.dumps(model, protocol=5).replace(running.encode(), other.encode())
    loaded = load_model(data)
    assert loaded.sklearn_version == other
    assert loaded.warnings
    assert all(other in text for text in loaded.warnings)
    # One message for the forest and one for its trees, not one per tree.
    assert len(loaded.warnings) == len(set(loaded.warnings)) == 2
    assert_predicts_the_same(loaded.estimator, model, rows)


# --- Hostile pickles ----------------------------------------------------------------------------------


def run_unrestricted(data: bytes, loader: str) -> None:
    """What load_model exists to prevent: the stock loaders run the payload."""
    result = joblib.load(io.BytesIO(data)) if loader == "joblib" else pickle.loads(data)
    for item in result if isinstance(result, list) else [result]:
        if isinstance(item, subprocess.Popen):
            item.wait()


def assert_not_run(sentinel: Path) -> None:
    time.sleep(0.05)  # a process that had been started would need a moment to create it
    assert not sentinel.exists()


def live(name: str, builder: Callable[[Path], bytes], refused: set[str], loader: str = "pickle") -> Any:
    return pytest.param(builder, refused, loader, id=name)


LIVE_PAYLOADS = [
    live("os.system", os_system_protocol_0, {"os.system"}),
    live("posix.system", posix_system, {"posix.system"}),
    live("subprocess.Popen", subprocess_popen, {"subprocess.Popen"}),
    live("builtins.eval", builtins_eval, {"builtins.eval"}),
    live("builtins.exec", builtins_exec, {"builtins.exec"}),
    live("python2-__builtin__.eval", python2_eval, {"builtins.eval"}),
    live("importlib.import_module", import_module_chain, {"builtins.getattr", "importlib.import_module"}),
    live("getattr-__import__", getattr_import_chain, {"builtins.getattr", "builtins.__import__"}),
    live("stack-global-getattr", stack_global_getattr_chain, {"builtins.getattr", "builtins.__import__"}),
    live(
        "dotted-sklearn.os.system",
        lambda sentinel: dotted_stack_global(sentinel, "sklearn", "os.system"),
        {"sklearn.os.system"},
    ),
    live("INST-opcode", inst_opcode, {"os.system"}),
    live("OBJ-opcode", obj_opcode, {"os.system"}),
    live("all-of-several", several_globals, {"posix.system", "builtins.eval", "subprocess.Popen"}),
    live("sklearn-function", sklearn_function, {"sklearn.datasets._svmlight_format_io.dump_svmlight_file"}),
    live("in-joblib-object-array", object_array_posix_system, {"posix.system"}, "joblib"),
    *(
        live(
            f"in-joblib-{method}",
            lambda sentinel, method=method: compressed_posix_system(sentinel, method),
            {"posix.system"},
            "joblib",
        )
        for method in COMPRESSIONS
    ),
]


@pytest.mark.parametrize(("builder", "refused", "loader"), LIVE_PAYLOADS)
def test_payloads_run_under_plain_unpickling(
    tmp_path: Path, builder: Callable[[Path], bytes], refused: set[str], loader: str
) -> None:
    sentinel = tmp_path / "pwned"
    run_unrestricted(builder(sentinel), loader)
    assert sentinel.exists()


@pytest.mark.parametrize(
    ("builder", "refused", "loader"),
    [
        *LIVE_PAYLOADS,
        live(
            "dotted-sklearn.base.os.system",
            lambda sentinel: dotted_stack_global(sentinel, "sklearn", "base.os.system"),
            {"sklearn.base.os.system"},
        ),
    ],
)
def test_payloads_are_refused_without_running(
    tmp_path: Path, builder: Callable[[Path], bytes], refused: set[str], loader: str
) -> None:
    sentinel = tmp_path / "pwned"
    with pytest.raises(UnsafeModel) as raised:
        load_model(builder(sentinel))
    assert set(raised.value.details["refused_globals"]) == refused
    assert len(raised.value.details["refused_globals"]) == len(refused)
    assert all(name in raised.value.message for name in refused)
    assert "outside lrnstak's allowlist" in raised.value.message
    assert raised.value.code == "unsafe_model"
    assert_not_run(sentinel)


def test_pipeline_with_function_transformer_calling_os_system_is_refused() -> None:
    with pytest.raises(UnsafeModel) as raised:
        load_model(pipeline_with_os_system())
    assert raised.value.details == {"refused_globals": ["posix.system"]}


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("builtins", "getattr"),
        ("builtins", "type"),
        ("builtins", "open"),
        ("builtins", "__import__"),
        ("builtins", "compile"),
        ("builtins", "globals"),
        ("builtins", "setattr"),
        ("builtins", "breakpoint"),
        ("nt", "system"),
        ("pty", "spawn"),
        ("runpy", "run_path"),
        ("webbrowser", "open"),
        ("pickle", "loads"),
        ("marshal", "loads"),
        ("ctypes", "CDLL"),
        ("shutil", "rmtree"),
        ("sys", "exit"),
        ("code", "interact"),
        ("types", "FunctionType"),
        ("functools", "partial"),
        ("operator", "attrgetter"),
        ("copyreg", "__newobj__"),
        ("numpy", "load"),
        ("numpy", "fromfile"),
        ("numpy", "ufunc"),
        ("numpy.testing", "assert_equal"),
        ("numpy.f2py", "compile"),
        ("numpy.ma.core", "_mareconstruct"),
        ("scipy.sparse", "load_npz"),
        ("sklearn", "os"),
        ("sklearn.utils.validation", "check_array"),
        ("sklearn.utils._testing", "assert_run_python_script_without_output"),
        ("sklearn.utils._mocking", "CheckingClassifier"),
        ("sklearn.utils", "Bunch"),
        ("sklearn.does_not_exist", "Thing"),
        ("sklearn.linear_model", "LinearRegression"),  # a re-export, not where the class is defined
        ("joblib", "load"),
        ("joblib.numpy_pickle_compat", "NDArrayWrapper"),
        ("lrnstak.ml.safe_loading", "load_model"),
        ("lrnstak.ml.safe_loading", "_Refused"),
    ],
)
def test_names_outside_the_allowlist_are_refused_without_importing(module: str, name: str) -> None:
    already_imported = module in sys.modules
    with pytest.raises(UnsafeModel) as raised:
        load_model(bare_global(module, name), require_predict=False)
    assert raised.value.details == {"refused_globals": [f"{module}.{name}"]}
    assert (module in sys.modules) == already_imported


def test_a_refused_module_is_never_imported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sentinel = tmp_path / "imported"
    module = "lrnstak_test_import_side_effect"
    import_side_effect_module(tmp_path, module, sentinel)
    monkeypatch.syspath_prepend(str(tmp_path))
    data = bare_global(module, "anything")
    try:
        with pytest.raises(UnsafeModel):
            load_model(data, require_predict=False)
        assert module not in sys.modules
        assert not sentinel.exists()
        # The control: a stock unpickler imports the module, and so runs it, before finding no such name.
        with pytest.raises(AttributeError):
            pickle.loads(data)
        assert sentinel.exists()
    finally:
        sys.modules.pop(module, None)


def test_refusals_are_reported_even_when_the_placeholder_breaks_the_load() -> None:
    # numpy's _reconstruct is allowlisted but fails on the placeholder standing in for os.system.
    data = pickle.dumps(Call(np._core.multiarray._reconstruct, os.system, (0,), b"b"))
    with pytest.raises(UnsafeModel) as raised:
        load_model(data)
    assert raised.value.details == {"refused_globals": ["posix.system"]}


# How HistGradientBoostingRegressor turns raw scores into predictions. A plain class without
# __setstate__, so pickle.py's BUILD would setattr on the class itself.
IDENTITY_LINK = ("sklearn._loss.link", "IdentityLink")


def test_setting_attributes_on_a_class_is_refused() -> None:
    original = IdentityLink.inverse
    with pytest.raises(UnsafeModel) as raised:
        load_model(build_on_class(*IDENTITY_LINK, "inverse", "builtins", "str"), require_predict=False)
    assert raised.value.details == {
        "refused_globals": [],
        "refused_operations": [f"setting attributes of {'.'.join(IDENTITY_LINK)}"],
    }
    assert IdentityLink.inverse is original


def test_plain_pickle_would_change_the_class_for_every_later_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(IdentityLink, "inverse", IdentityLink.inverse)  # restored after the test
    pickle.loads(build_on_class(*IDENTITY_LINK, "inverse", "builtins", "str"))
    assert IdentityLink.inverse is str


def test_persistent_ids_are_refused() -> None:
    with pytest.raises(UnsafeModel) as raised:
        load_model(persistent_id(), require_predict=False)
    assert raised.value.details == {"refused_globals": [], "refused_operations": ["persistent IDs"]}


@pytest.mark.parametrize(("code", "opcode"), [(0x7A, "EXT1"), (0x7A11, "EXT2"), (0x7A1100, "EXT4")])
def test_extension_codes_go_through_the_allowlist(tmp_path: Path, code: int, opcode: str) -> None:
    sentinel = tmp_path / "pwned"
    with extension_code("posix", "system", code):
        data = posix_system(sentinel)
        assert opcode in {op.name for op, _, _ in pickletools.genops(data)}
        # As if an earlier, unrestricted load had resolved the code: pickle.py would now skip find_class.
        vars(copyreg)["_extension_cache"][code] = os.system
        with pytest.raises(UnsafeModel) as raised:
            load_model(data)
    assert raised.value.details == {"refused_globals": ["posix.system"]}
    assert_not_run(sentinel)


def test_array_wrapper_inside_a_nested_pickle_is_refused() -> None:
    wrapper = NumpyArrayWrapper(np.ndarray, (1,), "C", np.dtype("f8"))
    data = joblib_dump({"values": np.array([wrapper], dtype=object)})
    with pytest.raises(UnsafeModel) as raised:
        load_model(data, require_predict=False)
    assert raised.value.details == {"refused_globals": ["joblib.numpy_pickle.NumpyArrayWrapper"]}


def test_pre_0_10_joblib_formats_are_refused() -> None:
    with pytest.raises(UnsafeModel) as raised:
        load_model(pickle.dumps(NDArrayWrapper("/etc/passwd", np.ndarray)), require_predict=False)
    assert raised.value.details == {"refused_globals": ["joblib.numpy_pickle_compat.NDArrayWrapper"]}
    with pytest.raises(InvalidModel, match=r"older than 0\.10"):
        load_model(b"ZF0x00000000000000" + b"x" * 32)


def test_codecs_encode_is_only_latin1() -> None:
    data = b"c_codecs\nencode\n(Vabc\nVrot13\ntR."
    assert pickle.loads(data) == "nop"
    with pytest.raises(InvalidModel, match="latin-1") as raised:
        load_model(data, require_predict=False)
    assert type(raised.value) is InvalidModel


# --- Inputs that are not models --------------------------------------------------------------------


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    "make_data",
    [
        pytest.param(lambda model: b"", id="empty"),
        pytest.param(lambda model: np.random.default_rng(0).bytes(512), id="random-bytes"),
        pytest.param(lambda model: b"not a pickle", id="text"),
        pytest.param(lambda model: b"\x80\x05", id="protocol-header-only"),
        pytest.param(lambda model: truncated(joblib_dump(model)), id="truncated-joblib"),
        pytest.param(lambda model: truncated(joblib_dump(model, compress=3)), id="truncated-compressed-joblib"),
        pytest.param(lambda model: truncated(pickle.dumps(model, protocol=5)), id="truncated-pickle"),
        pytest.param(lambda model: b"\x78" + b"\x00" * 64, id="broken-zlib"),
    ],
)
def test_bytes_that_are_not_a_model_file_are_invalid(fitted: Fitted, make_data: Callable[[Any], bytes]) -> None:
    with pytest.raises(InvalidModel) as raised:
        load_model(make_data(fitted["RandomForestClassifier"][0]))
    assert type(raised.value) is InvalidModel
    assert raised.value.code == "invalid_model"
    assert "joblib.dump or pickle.dump" in raised.value.message


@pytest.mark.parametrize(("obj", "type_name"), [({"coef": [1.0, 2.0]}, "dict"), ([1, 2, 3], "list")])
def test_objects_without_predict_are_not_models(obj: Any, type_name: str) -> None:
    for data in (pickle.dumps(obj), joblib_dump(obj)):
        with pytest.raises(InvalidModel) as raised:
            load_model(data)
        assert raised.value.message == f"The uploaded object is a {type_name}, not a model: it has no predict method."
        assert load_model(data, require_predict=False).estimator == obj


def test_a_predict_lookup_that_fails_means_no_model() -> None:
    broken = Pipeline.__new__(Pipeline)
    broken.__dict__["steps"] = 5  # Pipeline.predict's availability check trips over this
    with pytest.raises(InvalidModel, match="is a Pipeline, not a model"):
        load_model(pickle.dumps(broken))


def test_array_header_claiming_more_than_the_file_holds_is_invalid() -> None:
    data = pickle.dumps(NumpyArrayWrapper(np.ndarray, (10**12,), "C", np.dtype("f8")))
    with pytest.raises(InvalidModel, match="claims 8000000000000 bytes"):
        load_model(data, require_predict=False)


def test_decompressed_size_is_capped(fitted: Fitted, monkeypatch: pytest.MonkeyPatch) -> None:
    model, _ = fitted["RandomForestClassifier"]
    monkeypatch.setattr(safe_loading, "MAX_UNCOMPRESSED_BYTES", 2_000)
    with pytest.raises(InvalidModel, match="inflates to more than 2000 bytes"):
        load_model(joblib_dump(model, compress=3))
    # Uncompressed bytes are already in memory at their full size: nothing to cap.
    assert load_model(joblib_dump(model)).estimator.n_estimators == 3


@pytest.mark.parametrize("error", [MemoryError, KeyboardInterrupt])
def test_running_out_of_memory_or_interrupts_are_not_client_errors(
    fitted: Fitted, monkeypatch: pytest.MonkeyPatch, error: type[BaseException]
) -> None:
    def fail(self: object) -> None:
        raise error

    monkeypatch.setattr(safe_loading._RestrictedUnpickler, "load", fail)
    with pytest.raises(error):
        load_model(joblib_dump(fitted["Ridge"][0]))


# --- Integrity -------------------------------------------------------------------------------------


def test_sha256_hex_is_the_hex_digest() -> None:
    assert sha256_hex(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_matching_digest_loads(fitted: Fitted) -> None:
    model, rows = fitted["Lasso"]
    data = dump_model(model)
    assert_predicts_the_same(load_model(data, expected_sha256=sha256_hex(data)).estimator, model, rows)
    assert load_model(data, expected_sha256=sha256_hex(data).upper()).estimator is not None


def test_mismatched_digest_refuses_before_unpickling(tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    data = posix_system(sentinel)
    recorded = sha256_hex(b"the bytes that were stored")
    with pytest.raises(ArtifactIntegrityError) as raised:
        load_model(data, expected_sha256=recorded)
    assert raised.value.details == {"expected": recorded, "actual": sha256_hex(data)}
    assert "SHA-256 does not match" in raised.value.message
    assert_not_run(sentinel)
