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
