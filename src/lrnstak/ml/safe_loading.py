"""The one way lrnstak turns model bytes into objects: an unpickler that only resolves allowlisted globals.

Unpickling runs code. A pickle names globals (a module and an attribute) and then calls them, so an
uploaded "model" can just as well be a call to ``os.system``. Blocklists of dangerous names have been
bypassed again and again, because some new gadget is always one import away, so this module inverts the
rule: pickle resolves every global through ``find_class`` before anything can call it, and ours hands out
only names on an explicit allowlist. It checks the module name before importing anything, because
importing a module is itself running code. Every other route from a pickle stream to a callable (INST,
OBJ, EXT1/2/4, persistent IDs, and joblib's nested pickles for object arrays) goes through the same check
or is refused.

A refused global does not stop the load on the spot. The unpickler records it, hands back an inert
placeholder and carries on, so the client learns every refused name at once. Nothing refused is called.

What an allowlist cannot do: allowlisted compiled classes (sklearn's Tree, KDTree/BallTree,
HistGradientBoosting's TreePredictor, scipy's sparse matrices) trust the arrays in their pickled state, so
a crafted file that passes this check can still make prediction read out of bounds and crash the process.
Allowlisted constructors can also be asked for a lot of memory.
"""

import _compat_pickle
import copyreg
import hashlib
import hmac
import importlib
import io
import math
import pickle
import re
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Protocol

import joblib
import numpy as np
import numpy.typing as npt
import scipy.sparse
import sklearn
from joblib.compressor import _COMPRESSORS
from joblib.numpy_pickle import NumpyArrayWrapper
from joblib.numpy_pickle_utils import _detect_compressor, _ensure_native_byte_order
from sklearn.base import BaseEstimator
from sklearn.exceptions import InconsistentVersionWarning
from sklearn.metrics._dist_metrics import DistanceMetric

from lrnstak.errors import ArtifactIntegrityError, InvalidModel, LrnstakError, UnsafeModel

# A few megabytes of compressed upload can inflate to far more than a Lambda's memory (bz2 and xz
# especially); past this many decompressed bytes the load stops. Generous, because lrnstak also reloads
# the models it trained itself, and a large forest is hundreds of megabytes.
MAX_UNCOMPRESSED_BYTES: Final = 2 * 1024**3

_READ_CHUNK: Final = 1024**2

_WHAT_TO_SEND: Final = (
    "Send the base64 of a file written by joblib.dump or pickle.dump of a fitted scikit-learn estimator."
)
_WHAT_LOADS: Final = "Only scikit-learn estimators, numpy/scipy arrays and lrnstak's own transformers can be loaded."


@dataclass(frozen=True)
class LoadedModel:
    """An estimator that came through the allowlist, with what the client should hear about its loading."""

    estimator: Any
    # The scikit-learn version that pickled it: sklearn warns when it differs from the running one.
    sklearn_version: str
    warnings: tuple[str, ...]


def sha256_hex(data: bytes) -> str:
    """The digest lrnstak records when it stores model bytes and checks before unpickling them again."""
    return hashlib.sha256(data).hexdigest()


def dump_model(estimator: Any) -> bytes:
    """Serialize a model lrnstak trained itself, in the joblib format load_model reads."""
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer, compress=3)
    return buffer.getvalue()


def load_model(data: bytes, *, expected_sha256: str | None = None, require_predict: bool = True) -> LoadedModel:
    """Unpickle model bytes (plain pickle, protocols 0-5, or joblib, compressed or not) through the allowlist.

    Raises ArtifactIntegrityError before unpickling anything if ``expected_sha256`` does not match,
    UnsafeModel if the stream names anything outside the allowlist, and InvalidModel for anything else
    that is not a model.
    """
    if expected_sha256 is not None:
        _verify_digest(data, expected_sha256)
    with warnings.catch_warnings(record=True) as caught:
        # Not thread-safe (the filters are global), which is fine in a Lambda handling one request at a time.
        warnings.simplefilter("always")
        estimator = _unpickle(data)
    if require_predict and not _has_predict(estimator):
        raise InvalidModel(
            f"The uploaded object is a {type(estimator).__name__}, not a model: it has no predict method."
        )
    return LoadedModel(
        estimator=estimator,
        sklearn_version=_pickled_sklearn_version(caught),
        warnings=_warning_texts(caught),
    )


def _verify_digest(data: bytes, expected_sha256: str) -> None:
    actual = sha256_hex(data)
    if not hmac.compare_digest(actual.encode(), expected_sha256.strip().lower().encode()):
        raise ArtifactIntegrityError(
            "The stored model's SHA-256 does not match the one recorded when it was saved; "
            "lrnstak will not unpickle it.",
            details={"expected": expected_sha256, "actual": actual},
        )


def _has_predict(estimator: Any) -> bool:
    try:
        # sklearn hides predict behind properties (Pipeline, available_if) that run code on the loaded state.
        return callable(getattr(estimator, "predict", None))
    except Exception:
        return False


def _pickled_sklearn_version(caught: list[warnings.WarningMessage]) -> str:
    for warning in caught:
        if isinstance(warning.message, InconsistentVersionWarning):
            return str(warning.message.original_sklearn_version)
    return str(sklearn.__version__)


def _warning_texts(caught: list[warnings.WarningMessage]) -> tuple[str, ...]:
    # A forest warns once per tree; the client needs each message once.
    return tuple(dict.fromkeys(str(warning.message) for warning in caught))


def _unpickle(data: bytes) -> Any:
    if not data:
        raise InvalidModel(f"The model is empty. {_WHAT_TO_SEND}")
    context = _LoadContext()
    try:
        stream, context.max_array_bytes = _open_stream(data)
        loaded = _RestrictedUnpickler(stream, context).load()
    except MemoryError:
        # Running out of memory is the server's problem to see, not a verdict on the client's file.
        raise
    except Exception as exc:
        # Placeholders for refused globals often break the load later on: the refusal is the real story.
        if context.refused:
            raise context.unsafe_model() from exc
        if isinstance(exc, LrnstakError):
            raise
        raise InvalidModel(f"The model is not a joblib or pickle file: {_summary(exc)}. {_WHAT_TO_SEND}") from exc
    if context.refused:
        raise context.unsafe_model()
    return loaded


def _summary(exc: Exception) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


# ---------------------------------------------------------------------------------------------------
# The allowlist. Keys are (module, name) exactly as a pickle names them; values are where the object
# really is, so that names from older libraries resolve to today's location without importing shims.


def _same(*names: tuple[str, str]) -> dict[tuple[str, str], tuple[str, str]]:
    return {name: name for name in names}


# Containers and scalars pickle writes for plain data, and types an estimator may hold as a parameter
# (dtype=float). Deliberately absent: getattr, eval, exec, __import__, type, open, compile, globals, vars,
# setattr, delattr and the rest; none of these types does anything but build a value when called.
_BUILTIN_TYPES: Final = (
    "bool",
    "bytearray",
    "bytes",
    "complex",
    "dict",
    "float",
    "frozenset",
    "int",
    "list",
    "object",
    "range",
    "set",
    "slice",
    "str",
    "tuple",
)

_ARRAY_WRAPPER: Final = ("joblib.numpy_pickle", "NumpyArrayWrapper")

_EXACT_GLOBALS: Final[dict[tuple[str, str], tuple[str, str]]] = {
    **_same(*(("builtins", name) for name in _BUILTIN_TYPES)),
    **_same(
        # How protocols 0 and 1 rebuild instances of plain classes: object.__new__ and __setstate__.
        ("copyreg", "_reconstructor"),
        ("collections", "OrderedDict"),
        # numpy arrays, dtypes and scalars: rebuilt from shape, dtype and raw bytes, never from code.
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"),
        # Random generators that fitted estimators keep (MLP's RandomState, HistGradientBoosting's
        # Generator): the _pickle constructors only look bit generators up by name or build allowlisted types.
        ("numpy.random._pickle", "__bit_generator_ctor"),
        ("numpy.random._pickle", "__generator_ctor"),
        ("numpy.random._pickle", "__randomstate_ctor"),
        ("numpy.random._mt19937", "MT19937"),
        ("numpy.random._pcg64", "PCG64"),
        ("numpy.random._pcg64", "PCG64DXSM"),
        ("numpy.random._philox", "Philox"),
        ("numpy.random._sfc64", "SFC64"),
        ("numpy.random.bit_generator", "SeedSequence"),
        ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
        ("numpy.random.mtrand", "RandomState"),
        ("numpy.random._generator", "Generator"),
        # joblib's stand-in for an array, whose bytes follow in the file; _RestrictedUnpickler reads them.
        _ARRAY_WRAPPER,
        # What fitted sklearn estimators are built of besides estimators. These are not BaseEstimator
        # subclasses, and newObj/__pyx_unpickle_* are functions, but each only builds an instance of the
        # class it is given (which must itself come through this allowlist) and fills in its state.
        ("sklearn.tree._tree", "Tree"),
        ("sklearn.ensemble._hist_gradient_boosting.predictor", "TreePredictor"),
        ("sklearn.neighbors._kd_tree", "KDTree"),
        ("sklearn.neighbors._kd_tree", "newObj"),
        ("sklearn.neighbors._ball_tree", "BallTree"),
        ("sklearn.neighbors._ball_tree", "newObj"),
        ("sklearn.metrics._dist_metrics", "newObj"),
        ("sklearn._loss._loss", "__pyx_unpickle_CyHalfMultinomialLoss"),
        ("sklearn.neural_network._stochastic_optimizers", "AdamOptimizer"),
        ("sklearn.neural_network._stochastic_optimizers", "SGDOptimizer"),
    ),
    # Pickles written under numpy 1.x name the modules numpy 2 moved to numpy._core; numpy.core is now a
    # shim that warns on every access, so go straight to the real objects.
    ("numpy.core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"): ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"): ("numpy._core.numeric", "_frombuffer"),
}

# Loss and link objects of GradientBoosting and HistGradientBoosting: every class these modules define.
_SKLEARN_LOSS_MODULES: Final = frozenset({"sklearn._loss.loss", "sklearn._loss.link", "sklearn._loss._loss"})

# Module path segments that are never loaded from, even inside an allowed namespace: test suites and
# helpers that run scripts or fake estimators, vendored third-party code, build tooling, and dunder
# modules (__main__, sklearn.__check_build).
_UNTRUSTED_SEGMENTS: Final = frozenset(
    {"conftest", "_testing", "_mocking", "estimator_checks", "externals", "_build_utils"}
)

_MODULE_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")


def _encode_latin1(text: object, encoding: object) -> bytes:
    """Stands in for _codecs.encode, with which protocols 0-2 carry bytes as latin-1 text.

    The real function accepts any codec (compressors, hex, rot13); pickle only ever writes latin-1.
    """
    if isinstance(text, str) and encoding in ("latin1", "latin-1"):
        return text.encode("latin-1")
    raise pickle.UnpicklingError("_codecs.encode is only accepted for latin-1 text")


_SUBSTITUTES: Final[dict[tuple[str, str], Any]] = {("_codecs", "encode"): _encode_latin1}


def _allowed_global(module: str, name: str, *, nested: bool) -> Any:
    """The object a pickle may use for ``module.name``, or None. Imports only allowlisted modules."""
    if not (_MODULE_NAME.fullmatch(module) and name.isidentifier()):
        # A dotted name (protocol 4's qualified names) would walk attributes from an allowed module to
        # anything it imported, e.g. sklearn.os.system.
        return None
    if (module, name) in _SUBSTITUTES:
        return _SUBSTITUTES[(module, name)]
    location = _EXACT_GLOBALS.get((module, name))
    if location is not None:
        # joblib only writes its array wrapper at the top level; inside a nested pickle it is a second way in.
        return None if nested and location == _ARRAY_WRAPPER else _import_attribute(*location)
    predicate = _namespace_predicate(module)
    if predicate is None:
        return None
    found = _import_attribute(module, name)
    return found if _is_class_defined_at(found, module, name) and predicate(found) else None


def _namespace_predicate(module: str) -> Callable[[type], bool] | None:
    """How to vet a class from ``module``, or None if nothing there is allowed (checked before importing)."""
    parts = module.split(".")
    if any(_is_untrusted_segment(part) for part in parts):
        return None
    if module == "numpy":
        return _is_numpy_scalar_type
    if module == "numpy.dtypes":
        return _is_numpy_dtype_class
    if parts[0] == "sklearn":
        return _is_sklearn_class
    if parts[:2] == ["scipy", "sparse"]:
        return _is_sparse_class
    if parts[:2] == ["lrnstak", "ml"]:
        # lrnstak's own transformers, which sit in Pipelines next to sklearn's.
        return _is_estimator_class
    return None


def _is_untrusted_segment(part: str) -> bool:
    return part.startswith(("__", "test", "_test")) or part in _UNTRUSTED_SEGMENTS


def _import_attribute(module: str, name: str) -> Any:
    try:
        return getattr(importlib.import_module(module), name, None)
    except Exception:
        # A module that does not exist, or fails to import, simply has nothing on the allowlist.
        return None


def _is_class_defined_at(found: object, module: str, name: str) -> bool:
    # Only classes, and only where they are defined: a re-export or an alias is not what was vetted,
    # and functions in allowed namespaces (sklearn.datasets.dump_svmlight_file writes files) stay out.
    return (
        isinstance(found, type)
        and getattr(found, "__module__", None) == module
        and getattr(found, "__qualname__", None) == name
    )


def _is_numpy_scalar_type(cls: type) -> bool:
    return issubclass(cls, np.generic)


def _is_numpy_dtype_class(cls: type) -> bool:
    return issubclass(cls, np.dtype)


def _is_sparse_class(cls: type) -> bool:
    return issubclass(cls, (scipy.sparse.spmatrix, scipy.sparse.sparray))


def _is_estimator_class(cls: type) -> bool:
    return issubclass(cls, BaseEstimator)


def _is_sklearn_class(cls: type) -> bool:
    return (
        issubclass(cls, BaseEstimator)
        or cls.__module__ in _SKLEARN_LOSS_MODULES
        # The metric objects inside KDTree/BallTree and KNeighbors* (EuclideanDistance64, ...).
        or issubclass(cls, DistanceMetric)
    )


# ---------------------------------------------------------------------------------------------------
# The unpickler.


class _Refused:
    """Stands in for a refused global, so that unpickling can carry on and report every refusal.

    Pickle calls what find_class returns (REDUCE, NEWOBJ, INST, OBJ, copyreg._reconstructor), sets state
    on the result (BUILD) and fills it (APPEND(S), SETITEM(S), ADDITEMS). All of that lands here and does
    nothing, so a refused name is never called, and the load ends in UnsafeModel whatever it builds.
    Methods take defaults so that they are also harmless when pickle applies them to the class itself.
    """

    def __new__(cls, *_args: object, **_kwargs: object) -> "_Refused":
        return super().__new__(cls)

    def __init__(self, *_args: object, **_kwargs: object) -> None:
        pass

    def __call__(self, *_args: object, **_kwargs: object) -> "_Refused":
        return _Refused()

    def __setstate__(self, _state: object = None) -> None:
        pass

    def __setitem__(self, _key: object, _value: object) -> None:
        pass

    def append(self, _item: object = None) -> None:
        pass

    def extend(self, _items: object = None) -> None:
        pass

    def add(self, _item: object = None) -> None:
        pass

    def __reduce__(self) -> tuple[type["_Refused"], tuple[()]]:
        return (_Refused, ())


@dataclass
class _LoadContext:
    """What one load_model call has refused so far; the nested unpicklers of object arrays share it."""

    # How many bytes one joblib array may claim: no more than the file, or the decompression cap.
    max_array_bytes: int = 0
    refused_globals: list[str] = field(default_factory=list)
    refused_operations: list[str] = field(default_factory=list)
    # Everything find_class handed out, by id: classes and functions shared by the whole process.
    # Holding them here keeps the ids unique for the duration of the load.
    handed_out: dict[int, object] = field(default_factory=dict)

    @property
    def refused(self) -> bool:
        return bool(self.refused_globals or self.refused_operations)

    def refuse_global(self, qualified_name: str) -> type[_Refused]:
        if qualified_name not in self.refused_globals:
            self.refused_globals.append(qualified_name)
        return _Refused

    def refuse_operation(self, description: str) -> None:
        if description not in self.refused_operations:
            self.refused_operations.append(description)

    def unsafe_model(self) -> UnsafeModel:
        sentences = []
        details: dict[str, list[str]] = {"refused_globals": list(self.refused_globals)}
        if self.refused_globals:
            sentences.append(
                f"The model refers to code outside lrnstak's allowlist: {', '.join(self.refused_globals)}."
            )
        if self.refused_operations:
            sentences.append(f"The model uses pickle features lrnstak refuses: {', '.join(self.refused_operations)}.")
            details["refused_operations"] = list(self.refused_operations)
        return UnsafeModel(" ".join([*sentences, _WHAT_LOADS]), details=details)


class _Stream(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...

    def readline(self, size: int = -1, /) -> bytes: ...


class _BoundedStream:
    """A decompressed stream that stops at MAX_UNCOMPRESSED_BYTES: a small upload must not fill memory."""

    def __init__(self, stream: _Stream, limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self._left = limit

    def read(self, size: int = -1, /) -> bytes:
        return self._count(self._stream.read(self._cap(size)))

    def readline(self, size: int = -1, /) -> bytes:
        return self._count(self._stream.readline(self._cap(size)))

    def _cap(self, size: int) -> int:
        # Ask for one byte past the budget, so that running over is noticed rather than silently truncated.
        return self._left + 1 if size < 0 or size > self._left else size

    def _count(self, chunk: bytes) -> bytes:
        self._left -= len(chunk)
        if self._left < 0:
            raise InvalidModel(
                f"The model inflates to more than {self._limit} bytes when decompressed, more than lrnstak loads."
            )
        return chunk


def _open_stream(data: bytes) -> tuple[_Stream, int]:
    """The pickle stream inside ``data``, decompressed the way joblib.load would, and its array budget."""
    raw = io.BytesIO(data)
    compressor = _detect_compressor(raw)
    if compressor == "compat":
        # joblib < 0.10 kept arrays in companion files named inside the stream; lrnstak reads one file only.
        raise InvalidModel(
            "The model was written by joblib older than 0.10, a format lrnstak does not read: "
            "save it again with a current joblib."
        )
    if compressor not in _COMPRESSORS:
        return raw, len(data)
    decompressed = io.BufferedReader(_COMPRESSORS[compressor].decompressor_file(raw), buffer_size=_READ_CHUNK)
    return _BoundedStream(decompressed, MAX_UNCOMPRESSED_BYTES), MAX_UNCOMPRESSED_BYTES


def _python3_name(module: str, name: str, proto: int) -> tuple[str, str]:
    # Protocols 0-2 may come from Python 2 (__builtin__, copy_reg); map them as pickle's fix_imports does,
    # so the allowlist judges the name that would actually be imported.
    if proto >= 3:
        return module, name
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _qualified_name(obj: object) -> str:
    module = getattr(obj, "__module__", None)
    name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return f"{module}.{name}" if module else str(name)


_PICKLE_LOAD_BUILD: Final[Callable[[Any], None]] = pickle._Unpickler.dispatch[pickle.BUILD[0]]


class _RestrictedUnpickler(pickle._Unpickler):
    """pickle's pure-Python unpickler, with joblib's array format and every route to a global checked.

    It replaces joblib's NumpyUnpickler rather than subclassing it: that one also honours the pre-0.10
    NDArrayWrapper, which reads files named in the stream, and memory-maps files by name.
    """

    # Internals of the pure-Python unpickler that typeshed does not declare.
    stack: list[Any]
    proto: int
    read: Callable[[int], bytes]
    append: Callable[[Any], None]

    dispatch: ClassVar[dict[int, Callable[[Any], None]]] = dict(pickle._Unpickler.dispatch)

    def __init__(self, stream: _Stream, context: _LoadContext, *, nested: bool = False) -> None:
        super().__init__(stream)
        self._stream = stream
        self._context = context
        self._nested = nested

    def find_class(self, module: str, name: str) -> Any:
        sys.audit("pickle.find_class", module, name)
        module, name = _python3_name(module, name, self.proto)
        found = _allowed_global(module, name, nested=self._nested)
        if found is None:
            return self._context.refuse_global(f"{module}.{name}")
        self._context.handed_out[id(found)] = found
        return found

    def persistent_load(self, pid: Any) -> Any:
        # Persistent IDs ask the unpickler's owner to supply objects; lrnstak supplies none.
        self._context.refuse_operation("persistent IDs")
        return _Refused()

    def _load_build(self) -> None:
        target = self.stack[-2]
        if id(target) in self._context.handed_out:
            # BUILD on a class or function would set attributes on it for the whole process, so that every
            # later model sees the change. Legitimate pickles only BUILD the instances they just created.
            self.stack.pop()
            self._context.refuse_operation(f"setting attributes of {_qualified_name(target)}")
            return
        _PICKLE_LOAD_BUILD(self)
        if type(self.stack[-1]) is NumpyArrayWrapper:
            # joblib's array placeholder is complete: its bytes follow in the file.
            self.stack[-1] = self._read_wrapped_array(self.stack[-1])

    def _read_wrapped_array(self, wrapper: object) -> npt.NDArray[Any]:
        """joblib's NumpyArrayWrapper.read_array, without its nested stdlib pickle.load and memory maps."""
        header = _ArrayHeader.from_wrapper(wrapper)
        if header.dtype.hasobject:
            array = self._load_nested_array()
        else:
            array = header.read_data(self._stream, self._context.max_array_bytes)
        native: npt.NDArray[Any] = _ensure_native_byte_order(array)
        return native

    def _load_nested_array(self) -> npt.NDArray[Any]:
        # joblib writes an object array as a complete pickle inside the file. Reading it with anything but
        # this restricted unpickler would let whatever the array holds past the allowlist.
        array = _RestrictedUnpickler(self._stream, self._context, nested=True).load()
        if not isinstance(array, np.ndarray):
            raise pickle.UnpicklingError("an object array in the joblib file does not hold an array")
        return array

    def _load_extension(self, code: int) -> None:
        # pickle.py consults copyreg's extension cache before find_class, and whatever another unpickler
        # put there would skip the allowlist: look the name up and check it every time instead.
        key = vars(copyreg)["_inverted_registry"].get(code)
        if key is None:
            raise pickle.UnpicklingError(f"unregistered extension code {code}")
        self.append(self.find_class(*key))

    def _load_ext1(self) -> None:
        self._load_extension(self.read(1)[0])

    def _load_ext2(self) -> None:
        self._load_extension(int.from_bytes(self.read(2), "little"))

    def _load_ext4(self) -> None:
        self._load_extension(int.from_bytes(self.read(4), "little", signed=True))

    dispatch[pickle.BUILD[0]] = _load_build
    dispatch[pickle.EXT1[0]] = _load_ext1
    dispatch[pickle.EXT2[0]] = _load_ext2
    dispatch[pickle.EXT4[0]] = _load_ext4


@dataclass(frozen=True)
class _ArrayHeader:
    """The fields of a joblib NumpyArrayWrapper, checked, since they come from the untrusted stream."""

    shape: tuple[int, ...]
    order: str
    dtype: np.dtype[Any]
    # joblib <= 1.1 wrote no alignment padding, and no alignment attribute.
    alignment: int | None

    @classmethod
    def from_wrapper(cls, wrapper: object) -> "_ArrayHeader":
        fields = vars(wrapper)
        shape, order, dtype = fields.get("shape"), fields.get("order"), fields.get("dtype")
        alignment = fields.get("numpy_array_alignment_bytes")
        if not (isinstance(shape, tuple) and all(type(size) is int and size >= 0 for size in shape)):
            raise pickle.UnpicklingError("a joblib array header has a malformed shape")
        if order not in ("C", "F") or not isinstance(dtype, np.dtype):
            raise pickle.UnpicklingError("a joblib array header has a malformed order or dtype")
        if alignment is not None and type(alignment) is not int:
            raise pickle.UnpicklingError("a joblib array header has a malformed alignment")
        return cls(shape, order, dtype, alignment)

    def read_data(self, stream: _Stream, max_bytes: int) -> npt.NDArray[Any]:
        count = math.prod(self.shape)
        nbytes = count * self.dtype.itemsize
        if nbytes > max_bytes:
            raise InvalidModel(
                f"An array in the model claims {nbytes} bytes, more than the file holds or lrnstak loads."
            )
        if self.alignment is not None:
            # joblib pads so that array data starts aligned; one byte says how much padding follows.
            _read_exactly(stream, _read_exactly(stream, 1)[0])
        flat = np.frombuffer(_read_exactly(stream, nbytes), dtype=self.dtype, count=count)
        if self.order == "F":
            return flat.reshape(self.shape[::-1]).transpose()
        return flat.reshape(self.shape)


def _read_exactly(stream: _Stream, size: int) -> bytearray:
    # Grows with what actually arrives, so a header that lies about its size costs nothing. A bytearray
    # rather than bytes so that the array built on it is writable, as joblib's arrays are.
    data = bytearray()
    while len(data) < size:
        chunk = stream.read(min(size - len(data), _READ_CHUNK))
        if not chunk:
            raise pickle.UnpicklingError("the file ends in the middle of an array")
        data += chunk
    return data
