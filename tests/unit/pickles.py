"""Hostile pickles for the safe-loading tests. Each payload, if executed, creates a sentinel file.

test_safe_loading proves every live payload does create its sentinel under plain pickle.loads or
joblib.load, so a missing sentinel after load_model shows the loader refused it, not that it was a dud.
"""

import copyreg
import importlib
import io
import os
import pickle
import shlex
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.datasets import dump_svmlight_file
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer


class Call:
    """Pickles as ``func(*args)``: the REDUCE opcode every classic pickle exploit uses."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func = func
        self.args = args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (self.func, self.args)

    def __call__(self, *args: Any) -> Any:
        # pickle insists that a reduce function is callable, which a nested Call is not otherwise.
        raise NotImplementedError("a Call is only ever pickled")


def touch(sentinel: Path) -> str:
    return f"touch {shlex.quote(str(sentinel))}"


def joblib_dump(obj: Any, compress: Any = 0) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(obj, buffer, compress=compress)
    return buffer.getvalue()


# --- Payloads built by pickling Call objects -------------------------------------------------------


def posix_system(sentinel: Path) -> bytes:
    # os.system pickles under its real module, posix.
    return pickle.dumps(Call(os.system, touch(sentinel)))


def subprocess_popen(sentinel: Path) -> bytes:
    return pickle.dumps(Call(subprocess.Popen, ["touch", str(sentinel)]))


def builtins_eval(sentinel: Path) -> bytes:
    return pickle.dumps(Call(eval, f"__import__('os').system({touch(sentinel)!r})"))


def builtins_exec(sentinel: Path) -> bytes:
    return pickle.dumps(Call(exec, f"import os\nos.system({touch(sentinel)!r})"))


def import_module_chain(sentinel: Path) -> bytes:
    """getattr(importlib.import_module("os"), "system")("touch ...")."""
    system = Call(getattr, Call(importlib.import_module, "os"), "system")
    return pickle.dumps(Call(system, touch(sentinel)))


def getattr_import_chain(sentinel: Path) -> bytes:
    """getattr(__import__("os"), "system")("touch ...")."""
    system = Call(getattr, Call(__import__, "os"), "system")
    return pickle.dumps(Call(system, touch(sentinel)))


def several_globals(sentinel: Path) -> bytes:
    """Three different refused callables in one stream: all of them must be reported."""
    return pickle.dumps(
        [
            Call(os.system, touch(sentinel)),
            Call(eval, f"__import__('os').system({touch(sentinel)!r})"),
            Call(subprocess.Popen, ["touch", str(sentinel)]),
        ]
    )


def sklearn_function(sentinel: Path) -> bytes:
    """A function from inside sklearn that writes a file wherever it is told."""
    return pickle.dumps(Call(dump_svmlight_file, np.zeros((1, 1)), np.zeros(1), str(sentinel)))


def compressed_posix_system(sentinel: Path, method: str) -> bytes:
    return joblib_dump(Call(os.system, touch(sentinel)), compress=(method, 3))


def object_array_posix_system(sentinel: Path) -> bytes:
    """joblib writes object arrays as a nested pickle; the payload rides inside one."""
    weights = np.array([Call(os.system, touch(sentinel)), 1.0], dtype=object)
    return joblib_dump({"weights": weights})


def pipeline_with_os_system() -> bytes:
    """A real Pipeline whose FunctionTransformer would call os.system on every transform."""
    return joblib_dump(Pipeline([("run", FunctionTransformer(func=os.system)), ("model", LinearRegression())]))


# --- Payloads assembled opcode by opcode -------------------------------------------------------------


def _text(value: str) -> bytes:
    encoded = value.encode()
    return pickle.BINUNICODE + len(encoded).to_bytes(4, "little") + encoded


def _stack_global(module: str, name: str) -> bytes:
    return _text(module) + _text(name) + pickle.STACK_GLOBAL


def _call(func: bytes, *args: bytes) -> bytes:
    return func + pickle.MARK + b"".join(args) + pickle.TUPLE + pickle.REDUCE


def _protocol_4(body: bytes) -> bytes:
    return pickle.PROTO + bytes([4]) + body + pickle.STOP


def dotted_stack_global(sentinel: Path, module: str, dotted_name: str) -> bytes:
    """Protocol 4 resolves ``module`` + ``a.b.c`` by walking attributes: sklearn.os is the os module."""
    return _protocol_4(_call(_stack_global(module, dotted_name), _text(touch(sentinel))))


def stack_global_getattr_chain(sentinel: Path) -> bytes:
    """getattr(__import__("os"), "system")("touch ...") with STACK_GLOBAL rather than GLOBAL."""
    imported_os = _call(_stack_global("builtins", "__import__"), _text("os"))
    system = _call(_stack_global("builtins", "getattr"), imported_os, _text("system"))
    return _protocol_4(_call(system, _text(touch(sentinel))))


def global_reduce_protocol_0(module: str, name: str, argument: str) -> bytes:
    """``module.name(argument)`` as protocol 0 text, the oldest form and the one Python 2 names live in."""
    return b"c%s\n%s\n(V%s\ntR." % (module.encode(), name.encode(), argument.encode("raw_unicode_escape"))


def os_system_protocol_0(sentinel: Path) -> bytes:
    return global_reduce_protocol_0("os", "system", touch(sentinel))


def python2_eval(sentinel: Path) -> bytes:
    """Python 2's __builtin__.eval, which pickle's fix_imports maps to builtins.eval."""
    return global_reduce_protocol_0("__builtin__", "eval", f"__import__('os').system({touch(sentinel)!r})")


def inst_opcode(sentinel: Path) -> bytes:
    """INST: protocol 0's "instantiate" names the callable inline and calls it with the marked args."""
    return b"(V%s\nios\nsystem\n." % touch(sentinel).encode("raw_unicode_escape")


def obj_opcode(sentinel: Path) -> bytes:
    """OBJ: protocol 1 calls the first object after the mark with the rest as arguments."""
    return pickle.MARK + b"cos\nsystem\n" + _text(touch(sentinel)) + pickle.OBJ + pickle.STOP


def bare_global(module: str, name: str) -> bytes:
    """A stream whose whole content is one global: enough to see whether find_class hands it out."""
    return b"c%s\n%s\n." % (module.encode(), name.encode())


def build_on_class(module: str, name: str, attribute: str, value_module: str, value_name: str) -> bytes:
    """BUILD with slot state on a class: pickle.py would setattr(cls, attribute, value) process-wide."""
    return (
        b"c%s\n%s\n" % (module.encode(), name.encode())
        + pickle.NONE
        + pickle.EMPTY_DICT
        + _text(attribute)
        + b"c%s\n%s\n" % (value_module.encode(), value_name.encode())
        + pickle.SETITEM
        + pickle.TUPLE2
        + pickle.BUILD
        + pickle.STOP
    )


def persistent_id() -> bytes:
    class _Persisting(pickle.Pickler):
        def persistent_id(self, obj: Any) -> Any:
            return "the-secret-key" if obj == "lookup" else None

    buffer = io.BytesIO()
    _Persisting(buffer, protocol=2).dump(["lookup"])
    return buffer.getvalue()


@contextmanager
def extension_code(module: str, name: str, code: int) -> Iterator[None]:
    """Registers a copyreg extension code, so that pickles name the global by number (EXT1/2/4)."""
    copyreg.add_extension(module, name, code)
    try:
        yield
    finally:
        copyreg.remove_extension(module, name, code)


def import_side_effect_module(directory: Path, module_name: str, sentinel: Path) -> None:
    """A module whose import alone creates the sentinel: importing is running code."""
    (directory / f"{module_name}.py").write_text(f"open({str(sentinel)!r}, 'w').close()\n")


# --- The corpus of test_pickle_corpus: more calls, memo tricks, numpy state, bombs and broken trees -------


class Built:
    """Pickles as ``func(*args)`` and then BUILD with ``state``: how numpy and sklearn objects pickle."""

    def __init__(self, func: Any, args: tuple[Any, ...], state: Any) -> None:
        self.func = func
        self.args = args
        self.state = state

    def __reduce__(self) -> tuple[Any, tuple[Any, ...], Any]:
        return (self.func, self.args, self.state)


def writes_sentinel(sentinel: Path) -> str:
    """Python source that creates the sentinel."""
    return f"open({str(sentinel)!r}, 'w').close()"


def payload_script(sentinel: Path) -> Path:
    """A script (and module, by its name) next to the sentinel whose running creates the sentinel."""
    script = sentinel.with_name("lrnstak_corpus_payload.py")
    script.write_text(writes_sentinel(sentinel) + "\n")
    return script


def _binint(value: int) -> bytes:
    return pickle.BININT + value.to_bytes(4, "little", signed=True)


def _memo(index: int) -> bytes:
    return pickle.LONG_BINPUT + index.to_bytes(4, "little")


def _recall(index: int) -> bytes:
    return pickle.LONG_BINGET + index.to_bytes(4, "little")


def stack_global_call(module: str, name: str, *texts: str) -> bytes:
    """``module.name(*texts)`` through STACK_GLOBAL, protocol 4, with text arguments."""
    return _protocol_4(_call(_stack_global(module, name), *(_text(text) for text in texts)))


def inst_check_output(sentinel: Path) -> bytes:
    """INST with a list argument: subprocess.check_output(["touch", sentinel])."""
    return b"((lVtouch\naV%s\naisubprocess\ncheck_output\n." % str(sentinel).encode("raw_unicode_escape")


def obj_popen(sentinel: Path) -> bytes:
    """OBJ, protocol 1: subprocess.Popen(["touch", sentinel])."""
    return b"(csubprocess\nPopen\n](Vtouch\nV%s\neo." % str(sentinel).encode("raw_unicode_escape")


def newobj_ex_popen(sentinel: Path) -> bytes:
    """NEWOBJ_EX, protocol 4: subprocess.Popen.__new__(Popen, args=[...]), a class reached without REDUCE."""
    args = pickle.EMPTY_TUPLE
    kwargs = pickle.EMPTY_DICT + _text("args") + _text(touch(sentinel)) + pickle.SETITEM
    return _protocol_4(_stack_global("subprocess", "Popen") + args + kwargs + pickle.NEWOBJ_EX)


def run_path(sentinel: Path) -> bytes:
    import runpy

    return pickle.dumps(Call(runpy.run_path, str(payload_script(sentinel))))


def run_module(sentinel: Path) -> bytes:
    import runpy

    return pickle.dumps(Call(runpy.run_module, payload_script(sentinel).stem))


def import_module(sentinel: Path) -> bytes:
    return pickle.dumps(Call(importlib.import_module, payload_script(sentinel).stem))


def pty_spawn(sentinel: Path) -> bytes:
    import pty

    return pickle.dumps(Call(pty.spawn, ["touch", str(sentinel)]))


def webbrowser_open(sentinel: Path) -> bytes:
    import webbrowser

    return pickle.dumps(Call(webbrowser.open, sentinel.as_uri()))


def methodcaller_chain(sentinel: Path) -> bytes:
    """methodcaller("system", "touch ...")(__import__("os"))."""
    import operator

    return pickle.dumps(Call(Call(operator.methodcaller, "system", touch(sentinel)), Call(__import__, "os")))


def attrgetter_chain(sentinel: Path) -> bytes:
    """attrgetter("system")(__import__("os"))("touch ...")."""
    import operator

    system = Call(Call(operator.attrgetter, "system"), Call(__import__, "os"))
    return pickle.dumps(Call(system, touch(sentinel)))


def partial_os_system(sentinel: Path) -> bytes:
    """functools.partial(os.system, "touch ...")()."""
    import functools

    return pickle.dumps(Call(Call(functools.partial, os.system, touch(sentinel))))


def estimator_with_system_predict(sentinel: Path) -> bytes:
    """An allowlisted estimator whose state sets its predict to os.system: predict(X) would run X."""
    model = LinearRegression()
    model.__dict__["predict"] = os.system
    return pickle.dumps(model)


def memo_put_get_protocol_0(sentinel: Path) -> bytes:
    """PUT an allowed global at memo 0, overwrite memo 0 with os.system, GET 0 and call it."""
    return b"cbuiltins\nset\np0\n0cos\nsystem\np0\n0g0\n(V%s\ntR." % touch(sentinel).encode("raw_unicode_escape")


def memo_alias_protocol_4(sentinel: Path) -> bytes:
    """MEMOIZE an allowed global, overwrite its memo slot with posix.system by BINPUT, BINGET it and call it."""
    return _protocol_4(
        _stack_global("builtins", "set")
        + pickle.MEMOIZE
        + pickle.POP
        + _stack_global("posix", "system")
        + pickle.BINPUT
        + b"\x00"
        + pickle.POP
        + _call(pickle.BINGET + b"\x00", _text(touch(sentinel)))
    )


def memo_get_of_nothing(sentinel: Path) -> bytes:
    """GET of a memo slot nothing was put in."""
    return b"g7\n."


def object_array_in_object_array(sentinel: Path) -> bytes:
    """joblib's nested pickle of an object array holding an object array holding the payload."""
    inner = np.empty(1, dtype=object)
    inner[0] = Call(os.system, touch(sentinel))
    outer = np.empty(1, dtype=object)
    outer[0] = inner
    return joblib_dump({"weights": outer})


def plain_object_array(sentinel: Path) -> bytes:
    """An object array in a plain pickle: its items are pickled inline."""
    array = np.empty(2, dtype=object)
    array[0] = Call(exec, f"import os\nos.system({touch(sentinel)!r})")
    return pickle.dumps(array)


def npy_with_pickled_objects(sentinel: Path) -> bytes:
    """What np.save writes for an object array: np.load(..., allow_pickle=True) unpickles it."""
    array = np.empty(1, dtype=object)
    array[0] = Call(os.system, touch(sentinel))
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def numpy_load_allow_pickle(sentinel: Path) -> bytes:
    """A pickle that asks numpy.load to unpickle an .npy file of its choosing."""
    npy = sentinel.with_name("payload.npy")
    npy.write_bytes(npy_with_pickled_objects(sentinel))
    return pickle.dumps(Call(np.load, str(npy), None, True))


def compressed_exec(sentinel: Path, method: str) -> bytes:
    return joblib_dump(Call(exec, f"import os\nos.system({touch(sentinel)!r})"), compress=(method, 3))


def pyfunc_distance(sentinel: Path) -> bytes:
    """The one DistanceMetric that calls a function it holds (metric=callable)."""
    return bare_global("sklearn.metrics._dist_metrics", "PyFuncDistance64")


def setitem_on_array(sentinel: Path) -> bytes:
    """SETITEM on an object array instead of a dict: array[key] = value, with stream data."""
    array = Built(np._core.multiarray._reconstruct, (np.ndarray, (0,), b"b"), (1, (2,), np.dtype("O"), False, [0, 0]))
    fill = pickle.MARK + _binint(0) + _text("x") + pickle.SETITEMS
    return pickle.dumps(array, protocol=4)[:-1] + fill + pickle.STOP


# Allocations pickle asks for without sending the bytes.


def reconstruct_huge_array(sentinel: Path) -> bytes:
    return pickle.dumps(Call(np._core.multiarray._reconstruct, np.ndarray, (10**12,), b"d"))


def bytes_of_size(sentinel: Path) -> bytes:
    return pickle.dumps(Call(bytes, 10**12))


def bytearray_of_size(sentinel: Path) -> bytes:
    return pickle.dumps(Call(bytearray, 10**12))


def list_of_range(sentinel: Path) -> bytes:
    return pickle.dumps(Call(list, range(10**12)))


def bytearray8_claim(sentinel: Path) -> bytes:
    """Protocol 5's BYTEARRAY8 with a length of a terabyte and three bytes behind it."""
    return pickle.PROTO + b"\x05" + pickle.BYTEARRAY8 + (2**40).to_bytes(8, "little") + b"abc" + pickle.STOP


def tree_with_huge_outputs(sentinel: Path) -> bytes:
    """sklearn's Tree(n_features, n_classes, n_outputs) reserves n_outputs counts before looking at n_classes."""
    from sklearn.tree._tree import Tree

    return pickle.dumps(Call(Tree, 1, np.ones(1, dtype=np.intp), 10**12))


def sparse_matrix_of_shape(sentinel: Path) -> bytes:
    """lil_matrix((rows, columns)) makes one Python list per row."""
    import scipy.sparse

    return pickle.dumps(Call(scipy.sparse.lil_matrix, (10**9, 10**9)))


def array_state_claiming_items(sentinel: Path) -> bytes:
    """An array whose pickled state claims 10**12 floats and sends one."""
    state = (1, (10**12,), np.dtype("f8"), False, b"\x00" * 8)
    return pickle.dumps(Built(np._core.multiarray._reconstruct, (np.ndarray, (0,), b"b"), state))


def doubling_tuple_key(sentinel: Path) -> bytes:
    """A dict key T60 where T(k+1) = (Tk, Tk): 150 bytes, and hashing it takes 2**60 steps."""
    key = pickle.EMPTY_TUPLE + (pickle.DUP + pickle.TUPLE2) * 60
    return _protocol_4(pickle.EMPTY_DICT + key + pickle.NONE + pickle.SETITEM)


def doubling_list_text(sentinel: Path) -> bytes:
    """str(L60) where L(k+1) = [Lk, Lk]: the text is 2**60 brackets long."""
    level = _memo(0) + pickle.POP + pickle.EMPTY_LIST + pickle.MARK + _recall(0) + _recall(0) + pickle.APPENDS
    return _protocol_4(
        _stack_global("builtins", "str") + pickle.EMPTY_LIST + level * 60 + pickle.TUPLE1 + pickle.REDUCE
    )


# State that makes numpy or CPython crash: load these in a subprocess.


def nested_tuples(sentinel: Path) -> bytes:
    """300000 nested 1-tuples, nothing hashing them: far past any recursion limit, and no model."""
    return pickle.PROTO + b"\x02" + pickle.EMPTY_TUPLE + pickle.TUPLE1 * 300_000 + pickle.STOP


def nested_tuple_key(sentinel: Path) -> bytes:
    """A million nested 1-tuples as a dict key: CPython hashes tuples by unbounded C recursion."""
    return (
        pickle.PROTO
        + b"\x02"
        + pickle.EMPTY_DICT
        + pickle.EMPTY_TUPLE
        + pickle.TUPLE1 * 10**6
        + pickle.NONE
        + pickle.SETITEM
        + pickle.STOP
    )


def object_array_missing_items(sentinel: Path) -> bytes:
    """An object array of 100000 items whose state lists one: numpy reads the list past its end."""
    state = (1, (100_000,), np.dtype("O"), False, [1])
    return pickle.dumps(Built(np._core.multiarray._reconstruct, (np.ndarray, (0,), b"b"), state))


def object_fields_flagged_plain(sentinel: Path) -> bytes:
    """A structured dtype with an object field whose pickled flags deny objects: the array's bytes become a pointer."""
    fields = {"a": (np.dtype("O"), 0), "b": (np.dtype("i8"), 8)}
    dtype = Built(np.dtype, ("V16", False, True), (3, "|", None, ("a", "b"), fields, 16, 1, 0))
    data = (0x4141414141414141).to_bytes(8, "little") + b"\x00" * 8
    return pickle.dumps(
        Built(np._core.multiarray._reconstruct, (np.ndarray, (0,), b"b"), (1, (1,), dtype, False, data))
    )


def subarray_wider_than_item(sentinel: Path) -> bytes:
    """A one-byte dtype whose state makes it four float64s: every item reads 31 bytes past its own."""
    dtype = Built(np.dtype, ("V1", False, True), (3, "|", (np.dtype("f8"), (4,)), None, None, 1, 8, 0))
    return pickle.dumps(Call(np._core.numeric._frombuffer, b"\x01" * 8, dtype, (8,), "C"))


def nested_object_arrays(sentinel: Path) -> bytes:
    """30000 object arrays, each the only item of the next: numpy frees them by unbounded recursion."""
    head = _protocol_4(b"")[:-1]  # PROTO 4, without STOP
    setup = (
        _stack_global("numpy._core.multiarray", "_reconstruct")
        + _memo(1)
        + pickle.POP
        + _stack_global("numpy", "ndarray")
        + pickle.MARK
        + _binint(0)
        + pickle.TUPLE
        + pickle.SHORT_BINBYTES
        + b"\x01b"
        + pickle.TUPLE3
        + _memo(2)
        + pickle.POP
        + _stack_global("numpy", "dtype")
        + _text("O8")
        + pickle.TUPLE1
        + pickle.REDUCE
        + _memo(3)
        + pickle.POP
        + pickle.NONE
        + _memo(4)
        + pickle.POP
    )
    level = (
        _recall(1)
        + _recall(2)
        + pickle.REDUCE
        + pickle.MARK
        + _binint(1)
        + _binint(1)
        + pickle.TUPLE1
        + _recall(3)
        + pickle.NEWFALSE
        + pickle.EMPTY_LIST
        + _recall(4)
        + pickle.APPEND
        + pickle.TUPLE
        + pickle.BUILD
        + _memo(4)
        + pickle.POP
    )
    return head + setup + level * 30_000 + _recall(4) + pickle.STOP


def nested_dtypes(sentinel: Path) -> bytes:
    """50000 structured dtypes, each the only field of the next: numpy lays them out by unbounded recursion."""
    head = _protocol_4(b"")[:-1]
    setup = (
        _stack_global("numpy", "dtype")
        + _memo(1)
        + pickle.POP
        + _text("V8")
        + pickle.NEWFALSE
        + pickle.NEWTRUE
        + pickle.TUPLE3
        + _memo(2)
        + pickle.POP
        + _recall(1)
        + _text("f8")
        + pickle.TUPLE1
        + pickle.REDUCE
        + _memo(3)
        + pickle.POP
    )
    state = (
        pickle.MARK
        + _binint(3)
        + _text("|")
        + pickle.NONE
        + _text("a")
        + pickle.TUPLE1
        + pickle.EMPTY_DICT
        + _text("a")
        + _recall(3)
        + _binint(0)
        + pickle.TUPLE2
        + pickle.SETITEM
        + _binint(8)
        + _binint(1)
        + _binint(0)
        + pickle.TUPLE
    )
    level = _recall(1) + _recall(2) + pickle.REDUCE + state + pickle.BUILD + _memo(3) + pickle.POP
    return head + setup + level * 50_000 + _recall(3) + pickle.STOP


def seed_sequence_chain(sentinel: Path) -> bytes:
    """A SeedSequence whose entropy is another SeedSequence: Cython frees such chains by recursion."""
    from numpy.random.bit_generator import SeedSequence

    unpickle, (cls, checksum, _), state = SeedSequence(1).__reduce__()
    inner = Built(unpickle, (cls, checksum, None), state)
    return pickle.dumps(Built(unpickle, (cls, checksum, None), (inner, *state[1:])))


# Decision trees whose nodes or counts contradict each other. sklearn predicts from them without bounds
# checks: a crash, a read of other memory, or a loop that never ends.


def _iris() -> tuple[Any, Any]:
    from sklearn.datasets import load_iris

    return load_iris(return_X_y=True)


def _with_nodes(model: Any, change: Any) -> Any:
    """``model`` (a fitted tree) with a Tree rebuilt from its own state after ``change(nodes)``."""
    from sklearn.tree._tree import Tree

    tree = model.tree_
    state = tree.__getstate__()
    state["nodes"] = state["nodes"].copy()
    change(state["nodes"])
    rebuilt = Tree(tree.n_features, np.asarray(tree.n_classes), tree.n_outputs)
    rebuilt.__setstate__(state)
    model.tree_ = rebuilt
    return model


def fitted_tree() -> Any:
    from sklearn.tree import DecisionTreeClassifier

    return DecisionTreeClassifier(random_state=0).fit(*_iris())


def tree_child_out_of_range(sentinel: Path) -> bytes:
    return pickle.dumps(_with_nodes(fitted_tree(), lambda nodes: nodes["left_child"].__setitem__(0, 10**9)))


def tree_feature_out_of_range(sentinel: Path) -> bytes:
    return pickle.dumps(_with_nodes(fitted_tree(), lambda nodes: nodes["feature"].__setitem__(0, 10**9)))


def tree_cycle(sentinel: Path) -> bytes:
    """The root is its own left child: prediction walks in circles, holding no lock anyone can interrupt."""
    return joblib_dump(_with_nodes(fitted_tree(), lambda nodes: nodes["left_child"].__setitem__(0, 0)))


def tree_shared_child(sentinel: Path) -> bytes:
    """Two parents of one node, and the node that should be there has none."""

    def share(nodes: Any) -> None:
        nodes["right_child"][0] = nodes["left_child"][0]

    return pickle.dumps(_with_nodes(fitted_tree(), share), protocol=5)


def tree_without_nodes(sentinel: Path) -> bytes:
    """A Tree never given its nodes: prediction reads the root from an empty allocation."""
    from sklearn.tree._tree import Tree

    model = fitted_tree()
    model.tree_ = Tree(model.tree_.n_features, np.asarray(model.tree_.n_classes), model.tree_.n_outputs)
    return pickle.dumps(model)


def tree_state_twice(sentinel: Path) -> bytes:
    """A Tree given its state twice: the second time sklearn keeps its arrays and takes the new node count."""
    tree = fitted_tree().tree_
    state = tree.__getstate__()
    state["node_count"] = 10**6
    again = pickle.dumps(state, protocol=2)[2:-1]  # without PROTO and STOP; its memo slots overwrite ours
    return pickle.dumps(tree, protocol=2)[:-1] + again + pickle.BUILD + pickle.STOP


def tree_without_feature_count(sentinel: Path) -> bytes:
    """Without n_features_in_, a tree's predict accepts input of any width and reads past narrow rows."""
    model = fitted_tree()
    del model.n_features_in_
    return pickle.dumps(model)


def forest_tree_on_more_features(sentinel: Path) -> bytes:
    """A forest checks rows for its 4 features, then hands them to a tree that splits on 10."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.tree import DecisionTreeClassifier

    features, labels = _iris()
    forest = RandomForestClassifier(n_estimators=2, random_state=0).fit(features, labels)
    wide = np.hstack([features, features, features[:, :2]])
    forest.estimators_[1] = DecisionTreeClassifier(random_state=0).fit(wide[:, ::-1], labels)
    return joblib_dump(forest)


def _boosting() -> Any:
    from sklearn.ensemble import GradientBoostingRegressor

    features, labels = _iris()
    return GradientBoostingRegressor(n_estimators=2, random_state=0).fit(features, labels.astype(float))


def boosting_stage_too_wide(sentinel: Path) -> bytes:
    """Two trees per stage for one column of raw predictions: predict_stages writes the second past it."""
    model = _boosting()
    model.estimators_ = np.hstack([model.estimators_, model.estimators_])
    return pickle.dumps(model)


def boosting_tree_child_out_of_range(sentinel: Path) -> bytes:
    model = _boosting()
    _with_nodes(model.estimators_[1, 0], lambda nodes: nodes["right_child"].__setitem__(0, 10**9))
    return joblib_dump(model, compress=3)


def _hist_boosting() -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=2, random_state=0).fit(*_iris())


def hist_predictor_child_out_of_range(sentinel: Path) -> bytes:
    model = _hist_boosting()
    model._predictors[1][2].nodes["left"][0] = 10**9
    return pickle.dumps(model)


def hist_predictor_feature_out_of_range(sentinel: Path) -> bytes:
    model = _hist_boosting()
    nodes = model._predictors[0][0].nodes
    nodes["feature_idx"][np.flatnonzero(nodes["is_leaf"] == 0)[0]] = 4
    return joblib_dump(model)


def hist_marked_as_fitting(sentinel: Path) -> bytes:
    """HistGradientBoosting in the middle of fit takes binned input and skips checking it."""
    model = _hist_boosting()
    model._in_fit = True
    return pickle.dumps(model)
