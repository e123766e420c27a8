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

Allowlisted names are not harmless whatever they are given: pickle calls them with arguments from the
stream, and compiled code (CPython's hashing, numpy, sklearn's trees) trusts the state it is handed and
reads out of bounds, or takes bytes for pointers, when that state lies. So the unpickler also

- lets each allowlisted callable take only the arguments pickle.dump writes for it (a numpy dtype from its
  name, a set from a list, an estimator class from nothing at all), which keeps out ``bytes(10**12)``,
  ``list(range(10**12))`` and scipy matrices built from a shape; an array may not ask for more bytes than
  the file holds;
- sets each object's state once, and checks the state of numpy dtypes and arrays before numpy sees it;
- bounds what hashing keys may cost, and how deeply hashed tuples, object arrays and dtypes may nest: all
  of them recurse in C without a limit, so a deep enough chain overflows the stack and kills the process;
- and once the object is built, checks every decision tree in it (sklearn's Tree, HistGradientBoosting's
  TreePredictor, and the ensembles that hand their trees input checked only once), because prediction
  follows their node and feature indices without bounds checks.

Still trusted as they come: KDTree/BallTree, libsvm's support vectors and scipy's sparse matrices, so a
crafted nearest-neighbours, SVM or sparse model can still make prediction read out of bounds.
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
import struct
import sys
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import NoneType
from typing import Any, ClassVar, Final, Protocol

import joblib
import numpy as np
import numpy.typing as npt
import scipy.sparse
import sklearn
from joblib.compressor import _COMPRESSORS
from joblib.numpy_pickle import NumpyArrayWrapper
from joblib.numpy_pickle_utils import _detect_compressor, _ensure_native_byte_order
from numpy.random.bit_generator import BitGenerator, SeedSequence
from sklearn.base import BaseEstimator
from sklearn.exceptions import InconsistentVersionWarning
from sklearn.metrics._dist_metrics import DistanceMetric

from lrnstak.errors import ArtifactIntegrityError, InvalidModel, LrnstakError, UnsafeModel
from lrnstak.ml.model_structure import (
    STRUCTURES_SHOWN,
    checks_structure,
    exception_summary,
    object_paths,
    structure_problems,
)

# A few megabytes of compressed upload can inflate to far more than a Lambda's memory (bz2 and xz
# especially); past this many decompressed bytes the load stops. Generous, because lrnstak also reloads
# the models it trained itself, and a large forest is hundreds of megabytes.
MAX_UNCOMPRESSED_BYTES: Final = 2 * 1024**3

# Hashing a key costs in proportion to its size, and a pickle can make a key twice the size of the previous
# one in a few bytes (a tuple holding two references to it). Hashing may cost this many steps per byte read,
# plus the floor; the keys of a model are short strings, one step each.
HASH_STEPS_PER_BYTE: Final = 16
HASH_STEPS_FLOOR: Final = 1_000_000

# How deeply hashed tuples, numpy object arrays and numpy dtypes may nest. CPython and numpy hash, lay out
# and free them by recursing in C without a limit, so a chain of a hundred thousand crashes the process;
# nothing in a model nests more than a few levels.
MAX_NESTING: Final = 64

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
    # Nothing in a pickle asks for memory it does not send, except the empty arrays numpy fills in later.
    context = _LoadContext(max_declared_bytes=len(data))
    try:
        stream, context.max_array_bytes = _open_stream(data)
        context.stream = stream
        loaded = _RestrictedUnpickler(stream, context).load()
        if not context.refused:
            # Placeholders stand anywhere in a refused load: its structure is not worth checking.
            _check_structures(loaded, context)
    except MemoryError:
        # Running out of memory is the server's problem to see, not a verdict on the client's file.
        raise
    except Exception as exc:
        # Placeholders for refused globals often break the load later on: the refusal is the real story.
        if context.refused:
            raise context.unsafe_model() from exc
        if isinstance(exc, LrnstakError):
            raise
        raise InvalidModel(
            f"The model is not a joblib or pickle file: {exception_summary(exc)}. {_WHAT_TO_SEND}"
        ) from exc
    if context.refused:
        raise context.unsafe_model()
    return loaded


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
        # The metric objects inside KDTree/BallTree and KNeighbors* (EuclideanDistance64, ...), except the
        # ones that call a function from the pickle (metric=callable), which the allowlist never supplies.
        or (issubclass(cls, DistanceMetric) and not cls.__name__.startswith("PyFuncDistance"))
    )


# ---------------------------------------------------------------------------------------------------
# Calls. pickle calls what find_class hands out with arguments from the stream (REDUCE, NEWOBJ, INST, OBJ,
# copyreg._reconstructor). Each allowlisted callable takes only the arguments pickle.dump writes for it:
# classes from the namespaces are only ever created empty and then given their state, and the few
# functions and builtins that take arguments get a rule each. A rule answers whether the call may go
# ahead; it raises _Refusal for a reason worth its own sentence, InvalidModel for a size over the limits.

_CallRule = Callable[[tuple[Any, ...], dict[str, Any], "_LoadContext"], bool]


def _no_arguments(args: tuple[Any, ...], kwargs: dict[str, Any], context: "_LoadContext") -> bool:
    return not args and not kwargs


def _bytearray_arguments(args: tuple[Any, ...], kwargs: dict[str, Any], context: "_LoadContext") -> bool:
    # bytearray(bytes) from protocols 2-4; Python 2 wrote bytearray(text, "latin-1"). Never a size.
    if kwargs or len(args) > 2:
        return False
    if len(args) == 2:
        return type(args[0]) is str and args[1] in ("latin-1", "latin1")
    return not args or type(args[0]) in (bytes, bytearray)


def _complex_arguments(args: tuple[Any, ...], kwargs: dict[str, Any], context: "_LoadContext") -> bool:
    return not kwargs and len(args) <= 2 and all(type(part) in (int, float) for part in args)


def _set_arguments(args: tuple[Any, ...], kwargs: dict[str, Any], context: "_LoadContext") -> bool:
    # set(list) and frozenset(list), as protocols 0-3 write them: the items come from the stream.
    if kwargs or len(args) > 1:
        return False
    if args:
        if type(args[0]) not in (list, tuple):
            return False
        context.charge_hashing(args[0])
    return True


def _range_arguments(args: tuple[Any, ...], kwargs: dict[str, Any], context: "_LoadContext") -> bool:
    return not kwargs and 1 <= len(args) <= 3 and all(type(bound) is int for bound in args)


def _slice_arguments(args: tuple[Any, ...], kwargs: dict[str, Any], context: "_LoadContext") -> bool:
    return not kwargs and 1 <= len(args) <= 3 and all(bound is None or type(bound) is int for bound in args)


def _ordered_dict_arguments(args: tuple[Any, ...], kwargs: dict[str, Any], context: "_LoadContext") -> bool:
    # OrderedDict() with SETITEMS after it; Python 2 wrote OrderedDict([[key, value], ...]).
    if kwargs or len(args) > 1:
        return False
    if args:
        pairs = args[0]
        if type(pairs) is not list or not all(type(pair) in (list, tuple) and len(pair) == 2 for pair in pairs):
            return False
        context.charge_hashing(pair[0] for pair in pairs)
    return True


def _reconstructor_arguments(args: tuple[Any, ...], kwargs: dict[str, Any], context: "_LoadContext") -> bool:
    # _reconstructor(cls, object, None) is object.__new__(cls), how protocols 0 and 1 create instances.
    # With another base it is base.__new__(cls, state) and base.__init__(obj, state): a call of base.
    if kwargs or len(args) != 3 or not (isinstance(args[0], type) and isinstance(args[1], type)):
        return False
    _, base, state = args
    return base is object or context.call_rule(base)((state,), {}, context)


def _dtype_arguments(args: tuple[Any, ...], kwargs: dict[str, Any], context: "_LoadContext") -> bool:
    # numpy writes dtype(name, align, copy) and sends the rest of the layout as BUILD state.
    return (
        not kwargs
        and 1 <= len(args) <= 3
        and type(args[0]) is str
        and all(type(flag) in (bool, int) for flag in args[1:])
    )


def _reconstruct_arguments(args: tuple[Any, ...], kwargs: dict[str, Any], context: "_LoadContext") -> bool:
    # numpy writes _reconstruct(ndarray, (0,), b"b") and sends shape, dtype and data as BUILD state. The
    # shape here is an allocation nothing in the stream pays for.
    if kwargs or len(args) != 3:
        return False
    subtype, shape, typecode = args
    shape = _shape_of(shape)
    if not (isinstance(subtype, type) and issubclass(subtype, np.ndarray)) or shape is None:
        return False
    if isinstance(typecode, np.dtype):
        context.seal(typecode)
        itemsize = typecode.itemsize
    elif type(typecode) in (bytes, str):
        itemsize = np.dtype(typecode).itemsize
    else:
        return False
    context.declare(math.prod(shape) * itemsize)
    return True


def _scalar_arguments(args: tuple[Any, ...], kwargs: dict[str, Any], context: "_LoadContext") -> bool:
    # scalar(dtype, raw bytes), which numpy checks against the item size; an object scalar is its object.
    if kwargs or len(args) != 2 or not isinstance(args[0], np.dtype):
        return False
    dtype, value = args
    context.seal(dtype)
    return dtype.kind == "O" if dtype.hasobject else type(value) is bytes


def _frombuffer_arguments(args: tuple[Any, ...], kwargs: dict[str, Any], context: "_LoadContext") -> bool:
    # _frombuffer(buffer, dtype, shape, order[, axis_order]) views bytes from the stream; numpy checks sizes.
    if kwargs or len(args) not in (4, 5):
        return False
    buffer, dtype, shape, order = args[:4]
    axis_order = args[4] if len(args) == 5 else None
    if not (
        type(buffer) in (bytes, bytearray)
        and isinstance(dtype, np.dtype)
        and not dtype.hasobject
        and _shape_of(shape) is not None
        and order in ("C", "F", "A", "K")
        and (axis_order is None or _shape_of(axis_order) is not None)
    ):
        return False
    context.seal(dtype)
    return True


def _bit_generator_arguments(args: tuple[Any, ...], kwargs: dict[str, Any], context: "_LoadContext") -> bool:
    # __bit_generator_ctor(PCG64) or ("PCG64"): it calls whatever class it is given.
    if kwargs or len(args) > 1:
        return False
    return not args or type(args[0]) is str or (isinstance(args[0], type) and issubclass(args[0], BitGenerator))


def _random_state_arguments(args: tuple[Any, ...], kwargs: dict[str, Any], context: "_LoadContext") -> bool:
    # __generator_ctor / __randomstate_ctor(bit generator or its name). Their second parameter is a
    # function they call on the first: never one from the stream.
    if kwargs or len(args) > 1:
        return False
    return not args or type(args[0]) is str or isinstance(args[0], BitGenerator)


def _seed_sequence_arguments(args: tuple[Any, ...], kwargs: dict[str, Any], context: "_LoadContext") -> bool:
    # Cython's __pyx_unpickle_SeedSequence(cls, checksum, state or None); the state usually comes as BUILD.
    if kwargs or len(args) != 3 or args[0] is not SeedSequence or type(args[1]) is not int:
        return False
    return args[2] is None or _seed_sequence_state_problem(args[2]) is None


def _cython_unpickle_arguments(args: tuple[Any, ...], kwargs: dict[str, Any], context: "_LoadContext") -> bool:
    # Cython's __pyx_unpickle_<Class>(cls, checksum, state): it checks both and types every field.
    return (
        not kwargs
        and len(args) == 3
        and isinstance(args[0], type)
        and type(args[1]) is int
        and (args[2] is None or type(args[2]) is tuple)
    )


def _class_argument(args: tuple[Any, ...], kwargs: dict[str, Any], context: "_LoadContext") -> bool:
    # sklearn's newObj(cls) is cls.__new__(cls): what NEWOBJ does without arguments.
    return not kwargs and len(args) == 1 and isinstance(args[0], type)


def _tree_arguments(args: tuple[Any, ...], kwargs: dict[str, Any], context: "_LoadContext") -> bool:
    # Tree(n_features, n_classes, n_outputs) allocates n_outputs class counts, then copies n_classes in.
    if kwargs or len(args) != 3:
        return False
    n_features, n_classes, n_outputs = args
    return (
        type(n_features) is int
        and n_features >= 1
        and type(n_outputs) is int
        and isinstance(n_classes, np.ndarray)
        and n_classes.shape == (n_outputs,)
        and n_outputs >= 1
        and n_classes.dtype.kind == "i"
        and bool((n_classes >= 1).all())
    )


def _codecs_arguments(args: tuple[Any, ...], kwargs: dict[str, Any], context: "_LoadContext") -> bool:
    return not kwargs and len(args) == 2  # _encode_latin1 checks the rest


# Keyed by where the object really is (the values of _EXACT_GLOBALS). Everything else: no arguments.
_CALL_RULES: Final[dict[tuple[str, str], _CallRule]] = {
    ("builtins", "bytearray"): _bytearray_arguments,
    ("builtins", "complex"): _complex_arguments,
    ("builtins", "frozenset"): _set_arguments,
    ("builtins", "set"): _set_arguments,
    ("builtins", "range"): _range_arguments,
    ("builtins", "slice"): _slice_arguments,
    ("collections", "OrderedDict"): _ordered_dict_arguments,
    ("copyreg", "_reconstructor"): _reconstructor_arguments,
    ("numpy", "dtype"): _dtype_arguments,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct_arguments,
    ("numpy._core.multiarray", "scalar"): _scalar_arguments,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer_arguments,
    ("numpy.random._pickle", "__bit_generator_ctor"): _bit_generator_arguments,
    ("numpy.random._pickle", "__generator_ctor"): _random_state_arguments,
    ("numpy.random._pickle", "__randomstate_ctor"): _random_state_arguments,
    ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"): _seed_sequence_arguments,
    ("sklearn.tree._tree", "Tree"): _tree_arguments,
    ("sklearn.neighbors._kd_tree", "newObj"): _class_argument,
    ("sklearn.neighbors._ball_tree", "newObj"): _class_argument,
    ("sklearn.metrics._dist_metrics", "newObj"): _class_argument,
    ("sklearn._loss._loss", "__pyx_unpickle_CyHalfMultinomialLoss"): _cython_unpickle_arguments,
}


def _call_rule(module: str, name: str) -> _CallRule:
    """The rule for calling what find_class hands out for ``module.name`` (already allowed)."""
    if (module, name) in _SUBSTITUTES:
        return _codecs_arguments
    location = _EXACT_GLOBALS.get((module, name))
    return _CALL_RULES.get(location, _no_arguments) if location is not None else _no_arguments


def _shape_of(value: object) -> tuple[int, ...] | None:
    shape = (value,) if type(value) is int else value
    if type(shape) is not tuple or len(shape) > 64:
        return None
    for size in shape:  # a loop, not all(): this runs for every array
        if type(size) is not int or size < 0:
            return None
    return shape


def _argument_types(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    described = [type(arg).__name__ for arg in args] + [f"{key}=" for key in kwargs]
    text = ", ".join(described[:6]) + (", ..." if len(described) > 6 else "")
    return f"({text})"


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


def _is_placeholder(obj: object) -> bool:
    return obj is _Refused or type(obj) is _Refused


class _Refusal(Exception):
    """An operation the unpickler skips instead of performing; the message joins refused_operations."""


# Hashing these recurses into their items, and CPython caches none of their hashes but frozenset's.
_HASHED_CONTAINERS: Final = (tuple, frozenset, slice)
_MAX_HASH_COST: Final = 2**62


def _hashed_items(key: object) -> tuple[object, ...]:
    if isinstance(key, slice):
        return (key.start, key.stop, key.step)
    return tuple(key) if isinstance(key, tuple | frozenset) else ()


@dataclass
class _LoadContext:
    """What one load_model call has refused so far; the nested unpicklers of object arrays share it."""

    # What numpy may be asked to allocate without the bytes coming in the stream: no more than the file.
    max_declared_bytes: int = 0
    # How many bytes one joblib array may claim: no more than the file, or the decompression cap.
    max_array_bytes: int = 0
    stream: "_Stream | None" = None
    refused_globals: list[str] = field(default_factory=list)
    refused_operations: list[str] = field(default_factory=list)
    inconsistent_structures: list[str] = field(default_factory=list)
    # Everything find_class handed out, by id: classes and functions shared by the whole process.
    # Holding them here keeps the ids unique for the duration of the load.
    handed_out: dict[int, object] = field(default_factory=dict)
    call_rules: dict[int, _CallRule] = field(default_factory=dict)
    # Objects whose state has been set (pickle sets it once, right after creating them).
    built: dict[int, object] = field(default_factory=dict)
    # numpy dtypes and arrays that arrays or other dtypes already use: changing their state now would
    # change the layout those rely on.
    sealed: dict[int, object] = field(default_factory=dict)
    # How deeply numpy object arrays and dtypes nest, by id, for the ones whose state has been set.
    nesting: dict[int, tuple[object, int]] = field(default_factory=dict)
    # Trees, and estimators that hold them, made by this load: checked once it is done.
    checked_objects: list[object] = field(default_factory=list)
    structure_checked_types: dict[type, bool] = field(default_factory=dict)
    hash_steps: int = 0
    # Hashing cost and nesting of tuples, frozensets and slices hashed so far, by id.
    key_costs: dict[int, tuple[object, int, int]] = field(default_factory=dict)

    @property
    def refused(self) -> bool:
        return bool(self.refused_globals or self.refused_operations or self.inconsistent_structures)

    def refuse_global(self, qualified_name: str) -> type[_Refused]:
        if qualified_name not in self.refused_globals:
            self.refused_globals.append(qualified_name)
        return _Refused

    def refuse_operation(self, description: str) -> None:
        if description not in self.refused_operations:
            self.refused_operations.append(description)

    def refuse_structure(self, description: str) -> None:
        if description not in self.inconsistent_structures:
            self.inconsistent_structures.append(description)

    def made(self, obj: object) -> object:
        """Notes an object a call made, to check its structure after the load if it is a tree or holds some."""
        kind = type(obj)
        checked = self.structure_checked_types.get(kind)
        if checked is None:
            checked = self.structure_checked_types[kind] = checks_structure(kind)
        if checked:
            self.checked_objects.append(obj)
        return obj

    def call_rule(self, func: object) -> _CallRule:
        return self.call_rules.get(id(func), _no_arguments)

    def seal(self, obj: object) -> None:
        self.sealed[id(obj)] = obj

    def declare(self, nbytes: int) -> None:
        if nbytes > self.max_declared_bytes:
            raise InvalidModel(
                f"The model asks numpy for an array of {nbytes} bytes without sending them, more than the "
                f"{self.max_declared_bytes} bytes of the whole file."
            )

    def nesting_of(self, obj: object) -> int:
        known = self.nesting.get(id(obj))
        return known[1] if known is not None else 1

    def charge_hashing(self, keys: Iterable[object]) -> None:
        """Counts what hashing ``keys`` costs; raises _Refusal past the budget or the nesting limit."""
        steps = 0
        for key in keys:
            steps += 1 if type(key) is str else self._hash_cost(key)
        self.hash_steps += steps
        if self.hash_steps > HASH_STEPS_FLOOR:
            read = self.stream.tell() if self.stream is not None else 0
            if self.hash_steps > HASH_STEPS_FLOOR + HASH_STEPS_PER_BYTE * read:
                raise _Refusal(f"keys that take more than {HASH_STEPS_PER_BYTE} hashing steps per byte to hash")

    def _hash_cost(self, key: object) -> int:
        if type(key) is int:
            return 1 + key.bit_length() // 64
        if type(key) not in _HASHED_CONTAINERS:
            return 1
        known = self.key_costs.get(id(key))
        if known is not None:
            return known[1]
        # Post-order and iterative: the point is to refuse keys nested deeper than any recursion would go.
        pending: list[tuple[object, int, bool]] = [(key, 1, False)]
        while pending:
            node, depth, items_done = pending.pop()
            if id(node) in self.key_costs:
                continue
            if depth > MAX_NESTING:
                raise _Refusal(f"keys nested more than {MAX_NESTING} levels deep")
            if items_done:
                self._record_hash_cost(node)
                continue
            pending.append((node, depth, True))
            pending.extend(
                (item, depth + 1, False)
                for item in _hashed_items(node)
                if type(item) in _HASHED_CONTAINERS and id(item) not in self.key_costs
            )
        return self.key_costs[id(key)][1]

    def _record_hash_cost(self, node: object) -> None:
        # Its nested items are recorded already: they came off the stack first.
        cost, nesting = 1, 1
        for item in _hashed_items(node):
            if type(item) in _HASHED_CONTAINERS:
                _, item_cost, item_nesting = self.key_costs[id(item)]
                cost, nesting = cost + item_cost, max(nesting, item_nesting + 1)
            else:
                cost += self._hash_cost(item)
        if nesting > MAX_NESTING:
            raise _Refusal(f"keys nested more than {MAX_NESTING} levels deep")
        self.key_costs[id(node)] = (node, min(cost, _MAX_HASH_COST), nesting)

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
        if self.inconsistent_structures:
            shown = self.inconsistent_structures[:STRUCTURES_SHOWN]
            more = len(self.inconsistent_structures) - len(shown)
            sentences.append(
                "Parts of the model contradict themselves in ways that would crash prediction: "
                + "; ".join(shown)
                + (f"; and {more} more." if more else ".")
            )
            details["inconsistent_structures"] = shown
        return UnsafeModel(" ".join([*sentences, _WHAT_LOADS]), details=details)


# A forest of hundreds of broken trees need not be listed in full.


class _Stream(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...

    def readline(self, size: int = -1, /) -> bytes: ...

    def tell(self) -> int: ...


class _BoundedStream:
    """A decompressed stream that stops at MAX_UNCOMPRESSED_BYTES: a small upload must not fill memory."""

    def __init__(self, stream: _Stream, limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self._left = limit

    def read(self, size: int = -1, /) -> bytes:
        wanted = self._cap(size)
        if wanted <= _READ_CHUNK:
            return self._count(self._stream.read(wanted))
        # Sizes come from length fields in the stream. A buffered reader reserves what it is asked for up
        # front, so ask for what actually arrives, a chunk at a time.
        chunks = []
        while wanted > 0:
            chunk = self._count(self._stream.read(min(wanted, _READ_CHUNK)))
            if not chunk:
                break
            chunks.append(chunk)
            wanted -= len(chunk)
        return b"".join(chunks)

    def readline(self, size: int = -1, /) -> bytes:
        return self._count(self._stream.readline(self._cap(size)))

    def tell(self) -> int:
        return self._limit - self._left

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


def _pickle_handler(opcode: bytes) -> Callable[[Any], None]:
    handler: Callable[[Any], None] = pickle._Unpickler.dispatch[opcode[0]]
    return handler


_PICKLE_LOAD_BUILD: Final = _pickle_handler(pickle.BUILD)
_PICKLE_INSTANTIATE: Final[Callable[[Any, Any, list[Any]], None]] = vars(pickle._Unpickler)["_instantiate"]

# What pickle.dump fills with APPEND(S), SETITEM(S) and ADDITEMS. Anything else with an append, extend,
# __setitem__ or add method (a numpy array, a sparse matrix) would run that method on stream data.
_MAPPINGS: Final = (dict, OrderedDict)


class _RestrictedUnpickler(pickle._Unpickler):
    """pickle's pure-Python unpickler, with joblib's array format and every route to a global checked.

    It replaces joblib's NumpyUnpickler rather than subclassing it: that one also honours the pre-0.10
    NDArrayWrapper, which reads files named in the stream, and memory-maps files by name.
    """

    # Internals of the pure-Python unpickler that typeshed does not declare.
    stack: list[Any]
    metastack: list[list[Any]]
    proto: int
    read: Callable[[int], bytes]
    readline: Callable[[], bytes]
    append: Callable[[Any], None]
    pop_mark: Callable[[], list[Any]]

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
        self._context.call_rules[id(found)] = _call_rule(module, name)
        return found

    def _name_line(self) -> str:
        # pickle.py drops the last byte of the line whatever it is: a file cut short in a global's name
        # would otherwise be judged by a name nobody wrote, and refused as unsafe rather than truncated.
        line = self.readline()
        if not line.endswith(b"\n"):
            raise pickle.UnpicklingError("pickle data was truncated")
        return line[:-1].decode("utf-8")

    def _load_global(self) -> None:
        module = self._name_line()
        self.append(self.find_class(module, self._name_line()))

    def _load_inst(self) -> None:
        module = self._name_line()
        klass = self.find_class(module, self._name_line())
        self._instantiate(klass, self.pop_mark())

    def persistent_load(self, pid: Any) -> Any:
        # Persistent IDs ask the unpickler's owner to supply objects; lrnstak supplies none.
        self._context.refuse_operation("persistent IDs")
        return _Refused()

    # Calls -----------------------------------------------------------------------------------------

    def _permits_call(self, func: Any, args: Any, kwargs: Any) -> bool:
        """Whether pickle may call ``func`` with these arguments; records why not, unless already refused."""
        if type(args) is not tuple or type(kwargs) is not dict:
            self._context.refuse_operation(f"calling {_qualified_name(func)} with arguments that are not a tuple")
            return False
        # Placeholders exist only once something has been refused.
        if self._context.refused and (_is_placeholder(func) or any(map(_is_placeholder, (*args, *kwargs.values())))):
            return False  # the refusal is on record; the result is a placeholder either way
        try:
            if self._context.call_rule(func)(args, kwargs, self._context):
                return True
            self._context.refuse_operation(f"calling {_qualified_name(func)} with {_argument_types(args, kwargs)}")
        except _Refusal as refusal:
            self._context.refuse_operation(str(refusal))
        return False

    def _load_reduce(self) -> None:
        args = self.stack.pop()
        func = self.stack[-1]
        self.stack[-1] = self._context.made(func(*args)) if self._permits_call(func, args, {}) else _Refused()

    def _load_newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(self._context.made(cls.__new__(cls, *args)) if self._permits_call(cls, args, {}) else _Refused())

    def _load_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        permitted = self._permits_call(cls, args, kwargs)
        self.append(self._context.made(cls.__new__(cls, *args, **kwargs)) if permitted else _Refused())

    def _instantiate(self, klass: Any, args: list[Any]) -> None:
        # INST and OBJ, protocols 0 and 1: klass(*args), or klass.__new__(klass) without arguments.
        if self._permits_call(klass, tuple(args), {}):
            _PICKLE_INSTANTIATE(self, klass, args)
            self._context.made(self.stack[-1])
        else:
            self.append(_Refused())

    # Filling containers -----------------------------------------------------------------------------

    def _fills(self, target: object, kinds: tuple[type, ...], keys: Iterable[object] = ()) -> bool:
        """Whether pickle may put items into ``target``, hashing ``keys`` on the way."""
        if _is_placeholder(target):
            return False
        if type(target) not in kinds:
            self._context.refuse_operation(f"adding items to a {type(target).__name__}")
            return False
        try:
            self._context.charge_hashing(keys)
        except _Refusal as refusal:
            self._context.refuse_operation(str(refusal))
            return False
        return True

    def _load_append(self) -> None:
        value = self.stack.pop()
        if self._fills(self.stack[-1], (list,)):
            self.stack[-1].append(value)

    def _load_appends(self) -> None:
        items = self.pop_mark()
        if self._fills(self.stack[-1], (list,)):
            self.stack[-1].extend(items)

    def _load_setitem(self) -> None:
        value = self.stack.pop()
        key = self.stack.pop()
        if self._fills(self.stack[-1], _MAPPINGS, (key,)):
            self.stack[-1][key] = value

    def _load_setitems(self) -> None:
        items = self.pop_mark()
        target = self.stack[-1]
        if self._fills(target, _MAPPINGS, items[::2]):
            for index in range(0, len(items), 2):
                target[items[index]] = items[index + 1]

    def _load_dict(self) -> None:
        items = self.pop_mark()
        result: dict[Any, Any] = {}
        if self._fills(result, (dict,), items[::2]):
            result.update(zip(items[::2], items[1::2], strict=False))
        self.append(result)

    def _load_additems(self) -> None:
        items = self.pop_mark()
        if self._fills(self.stack[-1], (set,), items):
            self.stack[-1].update(items)

    def _load_frozenset(self) -> None:
        items = self.pop_mark()
        try:
            self._context.charge_hashing(items)
        except _Refusal as refusal:
            self._context.refuse_operation(str(refusal))
            self.append(_Refused())
            return
        self.append(frozenset(items))

    def _load_bytearray8(self) -> None:
        # pickle.py allocates the length the stream claims before reading any of it.
        (size,) = struct.unpack("<Q", self.read(8))
        data = bytearray(self.read(min(size, _READ_CHUNK)))
        while len(data) < size:
            chunk = self.read(min(size - len(data), _READ_CHUNK))
            if not chunk:
                raise pickle.UnpicklingError("pickle data was truncated")
            data += chunk
        self.append(data)

    # State ------------------------------------------------------------------------------------------

    def _load_build(self) -> None:
        state = self.stack.pop()
        target = self.stack[-1]
        problem = self._build_problem(target, state)
        if problem is not None:
            self._context.refuse_operation(problem)
            return
        if _is_placeholder(target):
            return
        self._context.built[id(target)] = target
        if isinstance(target, np.dtype):
            self._build_dtype(target, state)
            return
        self.stack.append(state)
        _PICKLE_LOAD_BUILD(self)
        if type(self.stack[-1]) is NumpyArrayWrapper:
            # joblib's array placeholder is complete: its bytes follow in the file.
            self.stack[-1] = self._read_wrapped_array(self.stack[-1])

    def _build_problem(self, target: object, state: object) -> str | None:
        """Why the state may not be set on ``target``, or None."""
        context = self._context
        if id(target) in context.handed_out:
            # BUILD on a class or function would set attributes on it for the whole process, so that every
            # later model sees the change. Legitimate pickles only BUILD the instances they just created.
            return f"setting attributes of {_qualified_name(target)}"
        if _is_placeholder(target):
            return None
        if id(target) in context.built:
            return f"setting the state of a {type(target).__name__} twice"
        if id(target) in context.sealed:
            return f"changing a numpy {type(target).__name__} that other arrays or dtypes already use"
        if isinstance(target, np.ndarray | np.dtype | SeedSequence | BitGenerator):
            return _compiled_state_problem(target, state, context)
        try:
            # Without __setstate__, pickle stores the items of a dict state one by one, hashing the keys.
            if type(state) is dict:
                context.charge_hashing(state)
            elif type(state) is tuple and len(state) == 2 and type(state[0]) is dict:
                context.charge_hashing(state[0])
        except _Refusal as refusal:
            return str(refusal)
        return None

    def _build_dtype(self, target: Any, state: object) -> None:
        # numpy believes the flags, item size and fields of a pickled dtype, so the state it gets is the
        # one it writes itself for the layout the stream describes (checked by _dtype_state_problem).
        canonical = _canonical_dtype(target, state)
        assert canonical is not None  # _build_problem has refused the states without one
        target.__setstate__(canonical.__reduce__()[2])
        self._context.nesting[id(target)] = (target, _dtype_nesting(canonical, self._context))
        for inner in _inner_dtypes(canonical):
            self._context.seal(inner)  # a dtype inside another may not change its layout any more

    def _read_wrapped_array(self, wrapper: object) -> npt.NDArray[Any]:
        """joblib's NumpyArrayWrapper.read_array, without its nested stdlib pickle.load and memory maps."""
        header = _ArrayHeader.from_wrapper(wrapper)
        self._context.seal(header.dtype)
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

    dispatch[pickle.GLOBAL[0]] = _load_global
    dispatch[pickle.INST[0]] = _load_inst
    dispatch[pickle.REDUCE[0]] = _load_reduce
    dispatch[pickle.NEWOBJ[0]] = _load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = _load_newobj_ex
    dispatch[pickle.APPEND[0]] = _load_append
    dispatch[pickle.APPENDS[0]] = _load_appends
    dispatch[pickle.SETITEM[0]] = _load_setitem
    dispatch[pickle.SETITEMS[0]] = _load_setitems
    dispatch[pickle.DICT[0]] = _load_dict
    dispatch[pickle.ADDITEMS[0]] = _load_additems
    dispatch[pickle.FROZENSET[0]] = _load_frozenset
    dispatch[pickle.BYTEARRAY8[0]] = _load_bytearray8
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


# ---------------------------------------------------------------------------------------------------
# numpy state. numpy sets a dtype or an array from its pickled state without checking the state against
# itself: object fields flagged as plain bytes, an item size smaller than its fields, fewer items than the
# shape holds all turn into reads and writes out of bounds, or bytes taken for pointers.

_ALIGNED_STRUCT: Final = 0x80  # the dtype flag numpy sets for align=True structures


def _compiled_state_problem(target: object, state: object, context: _LoadContext) -> str | None:
    if isinstance(target, np.ndarray):
        return _array_state_problem(target, state, context)
    if isinstance(target, np.dtype):
        return _dtype_state_problem(target, state, context)
    if isinstance(target, SeedSequence):
        return _seed_sequence_state_problem(state)
    return _bit_generator_state_problem(state)


def _array_state_problem(target: npt.NDArray[Any], state: object, context: _LoadContext) -> str | None:
    """Why numpy may not take ``state`` for ``target``, or None; records how deeply the array nests."""
    # (version, shape, dtype, is_fortran, data); numpy before 1.0 wrote it without the version.
    if type(state) is not tuple or len(state) not in (4, 5):
        return "an array state numpy does not write"
    shape, dtype, fortran, data = state[-4:]
    shape = _shape_of(shape)
    if shape is None or not isinstance(dtype, np.dtype) or type(fortran) not in (bool, int):
        return "an array state numpy does not write"
    context.seal(dtype)
    count = math.prod(shape)
    if not dtype.hasobject:
        if type(data) not in (bytes, bytearray, str) or len(data) != count * dtype.itemsize:
            return f"an array of {count} {dtype} items whose data does not hold them"
        return None
    if type(data) is not list or len(data) != count:
        return f"an object array of {count} items whose list does not hold them"
    # numpy frees an object array inside an object array by recursion, without a limit.
    nesting = 1
    for item in data:
        if isinstance(item, np.ndarray):
            context.seal(item)  # so that it cannot be made to nest deeper once counted
            nesting = max(nesting, context.nesting_of(item) + 1)
    if nesting > MAX_NESTING:
        return f"object arrays nested more than {MAX_NESTING} levels deep"
    context.nesting[id(target)] = (target, nesting)
    return None


def _dtype_state_problem(target: np.dtype[Any], state: object, context: _LoadContext) -> str | None:
    try:
        canonical = _canonical_dtype(target, state)
    except (TypeError, ValueError, KeyError, IndexError) as exc:
        return f"a numpy dtype state numpy cannot build ({exception_summary(exc)})"
    if canonical is None:
        return "a numpy dtype state numpy does not write"
    if canonical.type is not target.type or canonical.itemsize != target.itemsize:
        # Arrays made with the dtype before its state was set rely on its item size and object fields.
        return f"a numpy dtype state that turns {target} into {canonical}"
    if _dtype_nesting(canonical, context) > MAX_NESTING:
        return f"numpy dtypes nested more than {MAX_NESTING} levels deep"
    return None


def _canonical_dtype(target: np.dtype[Any], state: object) -> np.dtype[Any] | None:
    """The dtype numpy's own constructor builds from the layout ``state`` describes, or None if malformed."""
    # (version, byteorder, subarray, names, fields, item size, alignment, flags[, metadata]), version 3 or 4.
    if type(state) is not tuple or len(state) not in (8, 9) or state[0] not in (3, 4):
        return None
    _, _, subarray, names, fields, itemsize, _, flags = state[:8]
    if type(itemsize) is not int or type(flags) is not int:
        return None
    if names is not None or fields is not None:
        return _structured_dtype(names, fields, itemsize, aligned=bool(flags & _ALIGNED_STRUCT))
    if subarray is not None:
        if type(subarray) is not tuple or len(subarray) != 2 or not isinstance(subarray[0], np.dtype):
            return None
        shape = _shape_of(subarray[1])
        return np.dtype((subarray[0], shape)) if shape is not None else None
    # A plain type: set the state on a copy, which may come out contradicting itself, and keep only its
    # name (byte order, size of text, unit of time).
    scratch: Any = np.dtype(target, copy=True)
    scratch.__setstate__(state)
    plain: np.dtype[Any] = np.dtype(scratch.str)
    return plain


def _structured_dtype(names: object, fields: object, itemsize: int, *, aligned: bool) -> np.dtype[Any] | None:
    if type(names) is not tuple or type(fields) is not dict or len(set(names)) != len(names):
        return None
    formats, offsets, titles = [], [], []
    for name in names:
        entry = fields.get(name) if type(name) is str else None
        if (
            type(entry) is not tuple
            or len(entry) not in (2, 3)
            or not isinstance(entry[0], np.dtype)
            or type(entry[1]) is not int
            or entry[1] < 0
            or (len(entry) == 3 and not (entry[2] is None or type(entry[2]) is str))
        ):
            return None
        formats.append(entry[0])
        offsets.append(entry[1])
        titles.append(entry[2] if len(entry) == 3 else None)
    # The constructor checks that fields fit the item size and that object fields overlap nothing.
    spec: Any = {"names": list(names), "formats": formats, "offsets": offsets, "titles": titles, "itemsize": itemsize}
    structured: np.dtype[Any] = np.dtype(spec, align=aligned)
    return structured


def _inner_dtypes(dtype: Any) -> list[np.dtype[Any]]:
    inner = [entry[0] for entry in (dtype.fields or {}).values()]
    if dtype.subdtype is not None:
        inner.append(dtype.subdtype[0])
    return inner


def _dtype_nesting(dtype: np.dtype[Any], context: _LoadContext) -> int:
    """1 for a plain dtype, one more per level of fields or subarrays; stops counting past MAX_NESTING."""
    deepest = 0
    pending = [(dtype, 1)]
    while pending and deepest <= MAX_NESTING:
        current, depth = pending.pop()
        known = context.nesting.get(id(current)) if current is not dtype else None
        if known is not None:
            deepest = max(deepest, depth - 1 + known[1])
            continue
        deepest = max(deepest, depth)
        pending.extend((inner, depth + 1) for inner in _inner_dtypes(current))
    return deepest


def _int_sequence(value: object) -> bool:
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "iu"
    return isinstance(value, list | tuple) and all(type(item) is int for item in value)


def _seed_sequence_state_problem(state: object) -> str | None:
    # (entropy, n_children_spawned, pool, pool_size, spawn_key). Entropy is any object to Cython: another
    # SeedSequence there, and in that one's, makes a chain that is freed by unbounded recursion.
    if type(state) is tuple and len(state) == 5:
        entropy, spawned, pool, pool_size, spawn_key = state
        if (
            (entropy is None or isinstance(entropy, int | np.integer) or _int_sequence(entropy))
            and type(spawned) is int
            and spawned >= 0
            and isinstance(pool, np.ndarray)
            and pool.dtype == np.uint32
            and type(pool_size) is int
            and pool.shape == (pool_size,)
            and _int_sequence(spawn_key)
        ):
            return None
    return "a SeedSequence state numpy does not write"


def _bit_generator_state_problem(state: object) -> str | None:
    # The generator's state dict (which numpy checks), with the SeedSequence that seeded it.
    if type(state) is dict:
        return None
    if (
        type(state) is tuple
        and len(state) == 2
        and type(state[0]) is dict
        and type(state[1]) in (NoneType, SeedSequence)
    ):
        return None
    return "a bit generator state numpy does not write"


def _check_structures(root: object, context: _LoadContext) -> None:
    """Refuses the load if a tree it made, or an estimator's account of its trees, could crash predict."""
    if not context.checked_objects:
        return
    problems = structure_problems(context.checked_objects, {})
    if problems:
        # Say where in the model they are: worth a walk through it only when the load is refused anyway.
        problems = structure_problems(context.checked_objects, object_paths(root, context.checked_objects))
    for problem in problems:
        context.refuse_structure(problem)
