"""The old stack's feature rules (extract, flatten, expand, classify) as a transformer inside saved pipelines.

Clients send rows as JSON objects. ``FeatureRules`` maps them to new rows: it adds the columns the rules
derive and drops the columns the rules consumed (once, however many rules name a column); a later step
turns the rows into a matrix. Because the step is pickled with the model, the features a model was trained
on are computed the same way when it predicts. Its fitted state is plain dicts, lists, strings and ints,
which the safe loader reads without allowlisting anything beyond the class itself.

The spec is ``{rule: {column: settings}}``:

- ``extract``: ``{"type": "datetime", "elements": [...]}`` -> ``{column}_{element}``. A value is an ISO-8601
  string (date only, "T" or space before the time, "Z" or an offset) or epoch seconds. Aware values are
  converted to UTC; naive ones are taken as UTC. Elements: year, month, day, hour, minute, second,
  day_of_week (Monday=0), day_of_year, week_of_year (ISO), quarter, is_weekend (0/1), epoch (float
  seconds); the old stack's pandas spellings dayofweek, dayofyear, week and weekofyear are accepted too.
- ``flatten``: an op or a list of ops -> ``{op}_{column}``, over the array's non-missing elements:
  sum, min, max, avg (= mean), mean, first, last, std (population, ddof=0), count, norm (Euclidean).
  An array with no non-missing element gives count 0, sum 0.0 and None for the rest.
- ``expand``: ``"columns"`` -> ``{column}_0`` ... ``{column}_{w-1}``, where w is the longest array seen at
  fit; at transform shorter arrays are padded with None and longer ones cut.
- ``classify``: ``{"method": m, "params": {...}}`` -> ``{m}_{column}_next``, ``_min``, ``_max``, ``_mean``.
  For each row on its own, with the row's array x_0..x_{n-1} and k = params["lags"] (default 1, 1..20):
    pairs      X_t = [x_{t-k}, ..., x_{t-1}], y_t = x_t for t = k..n-1, keeping only pairs with no missing
               value (so a gap never joins the values either side of it);
    fit        the method's regressor on those pairs (rows of X oldest first);
    next       its prediction for [x_{n-k}, ..., x_{n-1}], the step after the last element (None if one of
               those k values is missing);
    min/max/mean  over its in-sample predictions, one per kept pair.
  No complete pair (fewer than k+1 points, or gaps everywhere) gives None for all four.
  Methods: linear_regression (LinearRegression), ridge (Ridge), decision_tree (DecisionTreeRegressor),
  random_forest (RandomForestRegressor, n_estimators 10 by default, at most 100), knn (KNeighborsRegressor,
  n_neighbors 3 by default, capped at the row's number of pairs). Estimators that take a random_state get 0
  unless the params give another int; n_jobs may only be 1 (or null); every other param goes to the
  estimator as is. method defaults to decision_tree, as in the old stack.

Missing values are None (or a float NaN). A missing or absent column gives None in every column derived
from it for that row; a number array may hold missing elements. Every derived number is finite (a sum or a
fit that overflows is an error). Problems in the spec or in the data raise InvalidInput naming the rule,
column, row and element concerned.
"""

import math
import numbers
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any, Final

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.neighbors import KNeighborsRegressor
from sklearn.tree import DecisionTreeRegressor
from sklearn.utils.validation import check_is_fitted

from lrnstak.errors import InvalidInput

# The order the old stack applied its rules in, which is also the order of derived_columns_.
_RULE_ORDER: Final = ("extract", "flatten", "classify", "expand")
SUPPORTED_RULES: Final[frozenset[str]] = frozenset(_RULE_ORDER)

_DATETIME_ELEMENTS: Final[dict[str, Callable[[datetime], int | float]]] = {
    "year": lambda moment: moment.year,
    "month": lambda moment: moment.month,
    "day": lambda moment: moment.day,
    "hour": lambda moment: moment.hour,
    "minute": lambda moment: moment.minute,
    "second": lambda moment: moment.second,
    "day_of_week": lambda moment: moment.weekday(),
    "day_of_year": lambda moment: moment.timetuple().tm_yday,
    "week_of_year": lambda moment: moment.isocalendar().week,
    "quarter": lambda moment: (moment.month - 1) // 3 + 1,
    "is_weekend": lambda moment: int(moment.weekday() >= 5),
    "epoch": lambda moment: moment.timestamp(),
    # pandas Timestamp attributes, which the old stack read with getattr.
    "dayofweek": lambda moment: moment.weekday(),
    "dayofyear": lambda moment: moment.timetuple().tm_yday,
    "week": lambda moment: moment.isocalendar().week,
    "weekofyear": lambda moment: moment.isocalendar().week,
}

_FLATTEN_OPS: Final = ("sum", "min", "max", "avg", "mean", "first", "last", "std", "count", "norm")

_EXPAND_MODES: Final = ("columns",)

_CLASSIFY_OUTPUTS: Final = ("next", "min", "max", "mean")
_DEFAULT_METHOD: Final = "decision_tree"
_MAX_LAGS: Final = 20
# A regressor is fitted per row and per call: its size must stay bounded whatever the spec asks for.
_MAX_ESTIMATORS: Final = 100

# Each method's regressor and the params it gets unless the spec says otherwise.
_REGRESSORS: Final[dict[str, tuple[type[Any], dict[str, Any]]]] = {
    "linear_regression": (LinearRegression, {}),
    "ridge": (Ridge, {"random_state": 0}),
    "decision_tree": (DecisionTreeRegressor, {"random_state": 0}),
    "random_forest": (RandomForestRegressor, {"n_estimators": 10, "random_state": 0}),
    "knn": (KNeighborsRegressor, {"n_neighbors": 3}),
}

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

Row = Mapping[str, Any]
Derived = list[Any]


# Rows in, rows out: auto_wrap_output_keys=None keeps sklearn's set_output from treating the output as a matrix.
# mypy sees sklearn's classes as Any, so it checks the keyword against object.__init_subclass__.
class FeatureRules(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):  # type: ignore[call-arg]
    """Rows (dicts) -> rows with the rules' derived columns and without the columns they consumed.

    Fitted attributes: ``rules_`` (the normalised spec), ``expand_widths_`` ({column: width}),
    ``consumed_columns_`` (sorted) and ``derived_columns_`` (rule order extract, flatten, classify, expand;
    columns sorted within a rule; each column's outputs in the order this module lists them). fit refuses rules
    that would derive a column the training rows already have; at transform a derived column wins.
    """

    def __init__(self, rules: dict[str, Any] | None = None) -> None:
        self.rules = rules

    def fit(self, rows: list[dict[str, Any]], y: Any = None) -> "FeatureRules":
        spec = validate_rules(self.rules)
        checked = _check_rows(rows)
        _check_columns_present(spec, checked)
        widths = {column: _learn_width(column, checked) for column in spec.get("expand", {})}
        plan = _plan(spec, widths)
        consumed = sorted({column for columns in spec.values() for column in columns})
        derived = [name for step in plan for name in step.names]
        _check_collisions(derived, consumed, checked)
        self.rules_ = spec
        self.expand_widths_ = widths
        self.consumed_columns_ = consumed
        self.derived_columns_ = derived
        return self

    def transform(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        check_is_fitted(self, ["rules_", "expand_widths_", "consumed_columns_"])
        checked = _check_rows(rows)
        plan = _plan(self.rules_, self.expand_widths_)
        consumed = frozenset(self.consumed_columns_)
        return [_transform_row(index, row, plan, consumed) for index, row in enumerate(checked)]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.dict = True
        return tags


# ---------------------------------------------------------------------------------------------------
# The spec.


def validate_rules(rules: Any) -> dict[str, Any]:
    """The spec in canonical form (rules in order, columns sorted, outputs deduplicated), or InvalidInput.

    Two specs that ask for the same features normalise to equal dicts. None means no rules.
    """
    if rules is None:
        return {}
    if not isinstance(rules, Mapping):
        raise InvalidInput(
            f"Feature rules must be an object of {{rule: {{column: settings}}}}, got {_kind(rules)}.",
            details={"supported_rules": list(_RULE_ORDER)},
        )
    unsupported = [str(name) for name in rules if name not in SUPPORTED_RULES]
    if unsupported:
        raise InvalidInput(
            f"Unsupported feature rule {', '.join(map(repr, unsupported))}: "
            f"the supported rules are {', '.join(_RULE_ORDER)}.",
            details={"unsupported_rules": unsupported, "supported_rules": list(_RULE_ORDER)},
        )
    normalised: dict[str, Any] = {}
    for rule in _RULE_ORDER:
        columns = _validate_columns(rule, rules[rule]) if rule in rules else {}
        if columns:
            normalised[rule] = columns
    return normalised


def _validate_columns(rule: str, settings: Any) -> dict[str, Any]:
    if not isinstance(settings, Mapping):
        raise InvalidInput(
            f"The {rule} rule must be an object of {{column: settings}}, got {_kind(settings)}.",
            details={"rule": rule},
        )
    for column in settings:
        if not isinstance(column, str) or not column:
            raise InvalidInput(
                f"The {rule} rule names a column {column!r}: column names are non-empty strings.",
                details={"rule": rule, "column": str(column)},
            )
    validate = _COLUMN_VALIDATORS[rule]
    return {column: validate(column, settings[column]) for column in sorted(settings)}


def _spec_error(rule: str, column: str, problem: str, **details: Any) -> InvalidInput:
    return InvalidInput(f"{rule} on column {column!r}: {problem}", details={"rule": rule, "column": column, **details})


def _settings_object(rule: str, column: str, settings: Any, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(settings, Mapping):
        raise _spec_error(rule, column, f"settings must be an object with {', '.join(allowed)}, got {_kind(settings)}.")
    unknown = [str(key) for key in settings if key not in allowed]
    if unknown:
        raise _spec_error(
            rule,
            column,
            f"unknown setting {', '.join(map(repr, unknown))}; the settings are {', '.join(allowed)}.",
            unknown_settings=unknown,
        )
    return settings


def _chosen_names(rule: str, column: str, what: str, value: Any, supported: Sequence[str]) -> list[str]:
    """A non-empty list of names from ``supported``, deduplicated and in ``supported``'s order."""
    if not isinstance(value, list) or not value or not all(isinstance(name, str) for name in value):
        raise _spec_error(
            rule, column, f"{what} must be a non-empty list of names, got {value!r}.", supported=list(supported)
        )
    unknown = [name for name in dict.fromkeys(value) if name not in supported]
    if unknown:
        singular = what.removesuffix("s")
        raise _spec_error(
            rule,
            column,
            f"unsupported {singular} {', '.join(map(repr, unknown))}; supported: {', '.join(supported)}.",
            **{f"unsupported_{what}": unknown, "supported": list(supported)},
        )
    return [name for name in supported if name in value]


def _validate_extract(column: str, settings: Any) -> dict[str, Any]:
    checked = _settings_object("extract", column, settings, ("type", "elements"))
    if "type" not in checked:
        raise _spec_error("extract", column, 'settings need "type": "datetime".', supported_types=["datetime"])
    if checked["type"] != "datetime":
        raise _spec_error(
            "extract",
            column,
            f"type {checked['type']!r} is not supported; the only type is 'datetime'.",
            type=str(checked["type"]),
            supported_types=["datetime"],
        )
    elements = _chosen_names("extract", column, "elements", checked.get("elements"), tuple(_DATETIME_ELEMENTS))
    return {"type": "datetime", "elements": elements}


def _validate_flatten(column: str, settings: Any) -> list[str]:
    ops = [settings] if isinstance(settings, str) else settings
    return _chosen_names("flatten", column, "ops", ops, _FLATTEN_OPS)


def _validate_expand(column: str, settings: Any) -> str:
    if settings not in _EXPAND_MODES:
        raise _spec_error(
            "expand",
            column,
            f"mode {settings!r} is not supported; the only mode is 'columns'.",
            mode=str(settings),
            supported_modes=list(_EXPAND_MODES),
        )
    return "columns"


def _validate_classify(column: str, settings: Any) -> dict[str, Any]:
    checked = _settings_object("classify", column, settings, ("method", "params"))
    method = checked.get("method", _DEFAULT_METHOD)
    if method not in _REGRESSORS:
        raise _spec_error(
            "classify",
            column,
            f"method {method!r} is not supported; supported: {', '.join(_REGRESSORS)}.",
            method=str(method),
            supported_methods=list(_REGRESSORS),
        )
    params = _validate_params(column, method, checked.get("params", {}))
    return {"method": method, "params": params}


def _validate_params(column: str, method: str, params: Any) -> dict[str, Any]:
    if not isinstance(params, Mapping) or not all(isinstance(name, str) for name in params):
        raise _spec_error("classify", column, f"params must be an object, got {_kind(params)}.", method=method)
    lags = params.get("lags", 1)
    if isinstance(lags, bool) or not isinstance(lags, int) or not 1 <= lags <= _MAX_LAGS:
        raise _spec_error(
            "classify", column, f"param 'lags' must be an integer from 1 to {_MAX_LAGS}, got {lags!r}.", param="lags"
        )
    for name, value in params.items():
        if name != "lags":
            _check_param(column, method, name, value)
    normalised = dict(sorted({**params, "lags": lags}.items()))
    _try_params_together(column, method, normalised)
    return normalised


def _check_param(column: str, method: str, name: str, value: Any) -> None:
    """One estimator param, judged by scikit-learn itself so that the client reads its message."""
    if not _is_json_value(value):
        # The spec is pickled with the model: it may hold only what JSON can, nothing the safe loader refuses.
        raise _spec_error("classify", column, f"param {name!r} must be a JSON value, got {_kind(value)}.", param=name)
    if name == "n_estimators" and isinstance(value, int) and not isinstance(value, bool) and value > _MAX_ESTIMATORS:
        raise _spec_error(
            "classify", column, f"param 'n_estimators' may be at most {_MAX_ESTIMATORS}, got {value}.", param=name
        )
    if name == "n_jobs" and value not in (None, 1):
        # Features are computed row by row inside a request: no parallel workers per row.
        raise _spec_error("classify", column, f"param 'n_jobs' may only be 1 (or null), got {value!r}.", param=name)
    if name == "random_state" and (isinstance(value, bool) or not isinstance(value, int)):
        # None would give the same row different features at training and at prediction.
        raise _spec_error(
            "classify",
            column,
            "param 'random_state' must be an integer, so that features are reproducible.",
            param=name,
        )
    try:
        # What scikit-learn checks when fitting, without fitting anything.
        _make_regressor(method, {name: value}, n_pairs=None)._validate_params()
    except (TypeError, ValueError) as error:
        raise _spec_error(
            "classify", column, f"invalid param {name!r} for {method}: {error}", method=method, param=name
        ) from error


def _try_params_together(column: str, method: str, params: Mapping[str, Any]) -> None:
    """Fit and predict once on a short ramp: some params only fail in combination (knn's metric and algorithm)."""
    ramp: list[float | None] = [float(step) for step in range(params["lags"] + 3)]
    try:
        _classify_values(method, params, ramp)
    except _BadValue as bad:
        raise _spec_error(
            "classify", column, f"params for {method} do not work together: {bad.problem}", method=method
        ) from bad


def _is_json_value(value: Any) -> bool:
    if value is None or isinstance(value, str | int | float):
        return True
    if isinstance(value, list):
        return all(_is_json_value(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and _is_json_value(item) for key, item in value.items())
    return False


_COLUMN_VALIDATORS: Final[dict[str, Callable[[str, Any], Any]]] = {
    "extract": _validate_extract,
    "flatten": _validate_flatten,
    "expand": _validate_expand,
    "classify": _validate_classify,
}


def _make_regressor(method: str, params: Mapping[str, Any], n_pairs: int | None) -> Any:
    regressor, defaults = _REGRESSORS[method]
    kwargs = {**defaults, **{name: value for name, value in params.items() if name != "lags"}}
    if method == "knn" and n_pairs is not None:
        kwargs["n_neighbors"] = min(kwargs["n_neighbors"], n_pairs)
    return regressor(**kwargs)


# ---------------------------------------------------------------------------------------------------
# Fitting: rows, columns and widths.


def _check_rows(rows: Any) -> list[Row]:
    if isinstance(rows, np.ndarray) and rows.ndim == 1:
        rows = rows.tolist()
    if not isinstance(rows, list | tuple):
        raise InvalidInput(f"Rows must be a list of objects, got {_kind(rows)}.")
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise InvalidInput(f"Row {index} must be an object, got {_kind(row)}.", details={"row": index})
    return list(rows)


def _check_columns_present(spec: Mapping[str, Any], rows: Sequence[Row]) -> None:
    seen = {column for row in rows for column in row}
    for rule, columns in spec.items():
        for column in columns:
            if column not in seen:
                raise _spec_error(rule, column, "no training row has this column.")


def _learn_width(column: str, rows: Sequence[Row]) -> int:
    width = 0
    for index, row in enumerate(rows):
        value = row.get(column)
        if not _is_missing(value):
            width = max(width, len(_parse_array(index, column, "expand", value)))
    if width == 0:
        raise _spec_error(
            "expand", column, "no training row has a non-empty array here, so there is no width to learn."
        )
    return width


def _check_collisions(derived: list[str], consumed: list[str], rows: Sequence[Row]) -> None:
    duplicated = sorted(name for name, count in Counter(derived).items() if count > 1)
    if duplicated:
        raise InvalidInput(
            f"Two rules derive the same column {', '.join(map(repr, duplicated))}; change one of them.",
            details={"columns": duplicated},
        )
    kept = {column for row in rows for column in row} - set(consumed)
    clashing = [name for name in derived if name in kept]
    if clashing:
        raise InvalidInput(
            f"The rules derive column {', '.join(map(repr, clashing))}, which the rows already have; "
            "rename the input column or change the rule.",
            details={"columns": clashing},
        )


# ---------------------------------------------------------------------------------------------------
# Transforming: one step per (rule, column), applied row by row.


class _BadValue(Exception):
    """A value a rule cannot use; the caller adds the row, column and rule."""

    def __init__(self, problem: str, **details: Any) -> None:
        super().__init__(problem)
        self.problem = problem
        self.details = details


@dataclass(frozen=True)
class _Step:
    rule: str
    column: str
    names: tuple[str, ...]
    compute: Callable[[Any], Derived]


def _plan(spec: Mapping[str, Any], widths: Mapping[str, int]) -> list[_Step]:
    steps = []
    for rule in _RULE_ORDER:
        for column, settings in spec.get(rule, {}).items():
            steps.append(_STEP_BUILDERS[rule](column, settings, widths))
    return steps


def _extract_step(column: str, settings: Mapping[str, Any], _widths: Mapping[str, int]) -> _Step:
    elements = tuple(settings["elements"])
    names = tuple(f"{column}_{element}" for element in elements)
    return _Step("extract", column, names, partial(_extract_values, elements))


def _flatten_step(column: str, ops: list[str], _widths: Mapping[str, int]) -> _Step:
    names = tuple(f"{op}_{column}" for op in ops)
    return _Step("flatten", column, names, partial(_flatten_values, tuple(ops)))


def _classify_step(column: str, settings: Mapping[str, Any], _widths: Mapping[str, int]) -> _Step:
    method = settings["method"]
    names = tuple(f"{method}_{column}_{output}" for output in _CLASSIFY_OUTPUTS)
    return _Step("classify", column, names, partial(_classify_values, method, settings["params"]))


def _expand_step(column: str, _mode: str, widths: Mapping[str, int]) -> _Step:
    width = widths[column]
    names = tuple(f"{column}_{position}" for position in range(width))
    return _Step("expand", column, names, partial(_expand_values, width))


_STEP_BUILDERS: Final[dict[str, Callable[[str, Any, Mapping[str, int]], _Step]]] = {
    "extract": _extract_step,
    "flatten": _flatten_step,
    "classify": _classify_step,
    "expand": _expand_step,
}


def _transform_row(index: int, row: Row, plan: Sequence[_Step], consumed: frozenset[str]) -> dict[str, Any]:
    result = {key: value for key, value in row.items() if key not in consumed}
    for step in plan:
        value = row.get(step.column)
        if _is_missing(value):
            values: Derived = [None] * len(step.names)
        else:
            values = _apply(index, step, value)
        result.update(zip(step.names, values, strict=True))
    return result


def _apply(index: int, step: _Step, value: Any) -> Derived:
    try:
        # Array rules receive the parsed numbers; extract receives the raw value.
        values = step.compute(value if step.rule == "extract" else _parse_array(index, step.column, step.rule, value))
    except _BadValue as bad:
        raise _data_error(index, step.column, step.rule, bad.problem, **bad.details) from bad
    for name, derived in zip(step.names, values, strict=True):
        if isinstance(derived, float) and not math.isfinite(derived):
            raise _data_error(
                index,
                step.column,
                step.rule,
                f"{name} comes out beyond the range of a float for these values: send smaller numbers.",
                derived=name,
            )
    return values


def _data_error(index: int, column: str, rule: str, problem: str, **details: Any) -> InvalidInput:
    return InvalidInput(
        f"Row {index}, column {column!r} ({rule}): {problem}",
        details={"row": index, "column": column, "rule": rule, **details},
    )


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _parse_array(index: int, column: str, rule: str, value: Any) -> list[float | None]:
    if isinstance(value, np.ndarray) and value.ndim == 1:
        value = value.tolist()
    if not isinstance(value, list | tuple):
        raise _data_error(index, column, rule, f"expected an array of numbers, got {_kind(value)}.")
    try:
        return [_parse_number(position, element) for position, element in enumerate(value)]
    except _BadValue as bad:
        raise _data_error(index, column, rule, bad.problem, **bad.details) from bad


def _parse_number(position: int, element: Any) -> float | None:
    if _is_missing(element):
        return None
    if isinstance(element, bool) or not isinstance(element, numbers.Real):
        raise _BadValue(f"element {position} is {_kind(element)}, not a number.", element=position)
    try:
        number = float(element)
    except OverflowError:
        number = math.inf
    if math.isnan(number):
        return None
    if math.isinf(number):
        raise _BadValue(f"element {position} is not a finite number.", element=position)
    return number


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


# extract ---------------------------------------------------------------------------------------------


def _extract_values(elements: tuple[str, ...], value: Any) -> Derived:
    moment = _as_utc(_as_datetime(value))
    return [_DATETIME_ELEMENTS[element](moment) for element in elements]


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, str):
        return _parse_iso(value)
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        try:
            return _EPOCH + timedelta(seconds=float(value))
        except (OverflowError, ValueError) as error:
            raise _BadValue(f"epoch seconds {value!r} are out of range.") from error
    raise _BadValue(f"expected an ISO-8601 datetime string or epoch seconds, got {_kind(value)}.")


def _parse_iso(text: str) -> datetime:
    try:
        # Python 3.12 reads ISO-8601 with a date only, "T" or a space, fractions, "Z" and offsets.
        return datetime.fromisoformat(text.strip())
    except ValueError as error:
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise _BadValue(f"cannot read {shown!r} as an ISO-8601 datetime.") from error


def _as_utc(moment: datetime) -> datetime:
    if moment.utcoffset() is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError as error:
        raise _BadValue(f"{moment.isoformat()} is out of range once converted to UTC.") from error


# flatten ---------------------------------------------------------------------------------------------


def _flatten_values(ops: tuple[str, ...], values: list[float | None]) -> Derived:
    present = np.array([value for value in values if value is not None], dtype=float)
    # An overflow gives inf (or NaN), which _apply reports with the row and column.
    with np.errstate(over="ignore", invalid="ignore"):
        return [_flatten_one(op, present) for op in ops]


def _flatten_one(op: str, present: np.ndarray[Any, np.dtype[np.float64]]) -> float | int | None:
    if op == "count":
        return int(present.size)
    if op == "sum":
        try:
            return math.fsum(present.tolist())
        except OverflowError:
            return math.inf
    if present.size == 0:
        return None
    return float(_REDUCERS[op](present))


_REDUCERS: Final[dict[str, Callable[[np.ndarray[Any, np.dtype[np.float64]]], Any]]] = {
    "min": np.min,
    "max": np.max,
    "avg": np.mean,
    "mean": np.mean,
    "first": lambda present: present[0],
    "last": lambda present: present[-1],
    "std": lambda present: np.std(present, ddof=0),
    "norm": np.linalg.norm,
}


# expand ----------------------------------------------------------------------------------------------


def _expand_values(width: int, values: list[float | None]) -> Derived:
    return [*values[:width], *[None] * (width - len(values))]


# classify --------------------------------------------------------------------------------------------


def _classify_values(method: str, params: Mapping[str, Any], values: list[float | None]) -> Derived:
    lags: int = params["lags"]
    pairs, targets = _lagged_pairs(values, lags)
    if not pairs:
        return [None] * len(_CLASSIFY_OUTPUTS)
    regressor = _make_regressor(method, params, n_pairs=len(pairs))
    try:
        regressor.fit(np.array(pairs), np.array(targets))
        fitted = regressor.predict(np.array(pairs))
        window = values[-lags:]
        following = None if None in window else float(regressor.predict(np.array([window]))[0])
    except (TypeError, ValueError) as error:
        raise _BadValue(f"{method} could not be fitted: {error}", method=method) from error
    return [following, float(fitted.min()), float(fitted.max()), float(fitted.mean())]


def _lagged_pairs(values: list[float | None], lags: int) -> tuple[list[list[float]], list[float]]:
    pairs: list[list[float]] = []
    targets: list[float] = []
    for t in range(lags, len(values)):
        window, target = values[t - lags : t], values[t]
        if target is not None and None not in window:
            pairs.append([value for value in window if value is not None])
            targets.append(target)
    return pairs, targets
