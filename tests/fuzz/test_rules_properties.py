"""Properties of the feature rules (lrnstak.ml.rules): extract datetime, flatten, expand, classify.

Any spec normalises or is refused with InvalidInput; any rows give finite numbers (or None) in exactly the
declared columns, or InvalidInput naming the row and the column; never another exception.
"""

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lrnstak.errors import InvalidInput
from lrnstak.ml.rules import SUPPORTED_RULES, FeatureRules, validate_rules

PROPERTIES = settings(
    derandomize=True,
    deadline=None,
    database=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

ELEMENTS = ["year", "month", "day", "hour", "minute", "second", "day_of_week", "day_of_year", "week_of_year"]
ELEMENTS += ["quarter", "is_weekend", "epoch", "dayofweek", "dayofyear", "week", "weekofyear"]
OPS = ["sum", "min", "max", "avg", "mean", "first", "last", "std", "count", "norm"]
METHODS = ["linear_regression", "ridge", "decision_tree", "random_forest", "knn"]
COLUMNS = ["when", "series", "other"]

FINITE = st.floats(allow_nan=False, allow_infinity=False)
HUGE_INTS = st.integers(min_value=10**300, max_value=10**400)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | HUGE_INTS
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["nope", "2026-13-01", "2026-01-05T15:30:00+25:00", "0001-01-01T00:00:00+01:00"])
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=10,
)
DATETIMES = (
    st.datetimes(timezones=st.none() | st.just(UTC) | st.timezones()).map(lambda moment: moment.isoformat())
    | st.dates().map(lambda day: day.isoformat())
    | st.floats(min_value=-6e10, max_value=2.5e11)
    | st.integers(min_value=-(10**12), max_value=10**12)
)
# Arrays of numbers, mostly plausible, sometimes huge, missing or not numbers at all.
SERIES = st.lists(FINITE | st.none() | st.floats(min_value=-1e6, max_value=1e6) | HUGE_INTS, max_size=8) | JSON_VALUES
# Params the estimators accept, and some they refuse; small, so that every fit stays quick.
PARAMS = st.dictionaries(
    st.sampled_from(["lags", "max_depth", "n_estimators", "n_neighbors", "alpha", "fit_intercept", "n_jobs", "x"]),
    st.integers(min_value=-2, max_value=30) | st.booleans() | st.none() | st.floats(0, 5) | st.text(max_size=3),
    max_size=3,
)


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    """Specs built from the rules' own vocabulary, with mistakes mixed in."""
    spec: dict[str, Any] = {}
    if draw(st.booleans()):
        elements = draw(st.lists(st.sampled_from([*ELEMENTS, "century"]), min_size=1, max_size=4))
        spec["extract"] = {"when": draw(st.just({"type": "datetime", "elements": elements}) | JSON_VALUES)}
    if draw(st.booleans()):
        spec["flatten"] = {"series": draw(st.sampled_from(OPS) | st.lists(st.sampled_from(OPS), min_size=1))}
    if draw(st.booleans()):
        spec["expand"] = {"series": draw(st.just("columns") | SCALARS)}
    if draw(st.booleans()):
        settings_ = {"method": draw(st.sampled_from(METHODS)), "params": draw(PARAMS)}
        spec["classify"] = {"series": settings_}
    return spec


def attempt[T](call: Callable[[], T]) -> T | InvalidInput:
    """What the call returns, or the InvalidInput it raises; any other exception fails the property."""
    try:
        return call()
    except InvalidInput as error:
        return error


def derived_values_are_sane(rules: FeatureRules, row: dict[str, Any], out: dict[str, Any]) -> None:
    for name in rules.derived_columns_:
        value = out[name]
        assert value is None or isinstance(value, int | float), (name, value)
        assert value is None or math.isfinite(value), (name, value)
    for consumed in rules.consumed_columns_:
        assert consumed not in out or consumed in rules.derived_columns_
    # The columns no rule reads pass through untouched.
    for column, value in row.items():
        if column not in rules.consumed_columns_ and column not in rules.derived_columns_:
            assert out[column] is value


@PROPERTIES
@given(specs() | JSON_VALUES | st.dictionaries(st.sampled_from(sorted(SUPPORTED_RULES)), JSON_VALUES))
def test_a_spec_normalises_or_is_refused_and_normalising_twice_changes_nothing(spec: Any) -> None:
    normalised = attempt(lambda: validate_rules(spec))
    if isinstance(normalised, InvalidInput):
        assert normalised.message
        return
    assert set(normalised) <= SUPPORTED_RULES
    assert validate_rules(normalised) == normalised


# Params each method takes, kept small so that a fit per row stays quick.
VALID_PARAMS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "linear_regression": st.fixed_dictionaries({}, optional={"fit_intercept": st.booleans()}),
    "ridge": st.fixed_dictionaries({}, optional={"alpha": st.floats(0, 10)}),
    "decision_tree": st.fixed_dictionaries({}, optional={"max_depth": st.integers(1, 5)}),
    "random_forest": st.fixed_dictionaries({}, optional={"n_estimators": st.integers(1, 5)}),
    "knn": st.fixed_dictionaries({}, optional={"n_neighbors": st.integers(1, 4)}),
}


@st.composite
def valid_specs(draw: st.DrawFn) -> dict[str, Any]:
    rules = draw(st.lists(st.sampled_from(sorted(SUPPORTED_RULES)), min_size=1, unique=True))
    spec: dict[str, Any] = {}
    if "extract" in rules:
        elements = draw(st.lists(st.sampled_from(ELEMENTS), min_size=1, max_size=5))
        spec["extract"] = {"when": {"type": "datetime", "elements": elements}}
    if "flatten" in rules:
        spec["flatten"] = {"series": draw(st.lists(st.sampled_from(OPS), min_size=1, max_size=4))}
    if "expand" in rules:
        spec["expand"] = {"series": "columns"}
    if "classify" in rules:
        method = draw(st.sampled_from(METHODS))
        params = {**draw(VALID_PARAMS[method]), "lags": draw(st.integers(1, 3))}
        spec["classify"] = {"series": {"method": method, "params": params}}
    return spec


@st.composite
def fitted_rules(draw: st.DrawFn) -> FeatureRules:
    fit_rows = [
        {"when": draw(DATETIMES), "series": draw(st.lists(FINITE, min_size=1, max_size=6)), "other": 1}
        for _ in range(draw(st.integers(min_value=1, max_value=3)))
    ]
    return FeatureRules(draw(valid_specs())).fit(fit_rows)


# Ridge says so when a row's series makes its matrix ill-conditioned (a constant series); the fit still works.
@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")
@PROPERTIES
@given(
    fitted_rules(),
    st.lists(
        st.dictionaries(st.sampled_from(COLUMNS), DATETIMES | SERIES | JSON_VALUES, max_size=3),
        max_size=4,
    ),
)
def test_any_rows_give_finite_numbers_of_the_declared_width_or_name_row_and_column(
    rules: FeatureRules, rows: list[dict[str, Any]]
) -> None:
    out = attempt(lambda: rules.transform(rows))
    if isinstance(out, InvalidInput):
        row, column = out.details["row"], out.details["column"]
        assert 0 <= row < len(rows)
        assert column in rules.consumed_columns_
        assert f"Row {row}, column {column!r}" in out.message
        return
    assert len(out) == len(rows)
    for row, transformed in zip(rows, out, strict=True):
        assert set(rules.derived_columns_) <= set(transformed)
        derived_values_are_sane(rules, row, transformed)


@PROPERTIES
@given(st.lists(st.none() | FINITE | HUGE_INTS | st.floats(), max_size=10), st.sampled_from(OPS))
def test_flatten_is_finite_or_names_the_row(series: list[Any], op: str) -> None:
    rules = FeatureRules({"flatten": {"series": [op]}}).fit([{"series": [1.0]}])
    out = attempt(lambda: rules.transform([{"series": series}]))
    if isinstance(out, InvalidInput):
        assert out.details["row"] == 0
        assert out.details["column"] == "series"
        return
    value = out[0][f"{op}_series"]
    present = [element for element in series if element is not None and element == element]
    if op == "count":
        assert value == len(present)
    elif not present:
        assert value == (0.0 if op == "sum" else None)
    else:
        assert math.isfinite(value)


@PROPERTIES
@given(DATETIMES, st.lists(st.sampled_from(ELEMENTS), min_size=1, unique=True))
def test_extract_of_any_datetime_is_whole_numbers_and_a_finite_epoch(value: Any, elements: list[str]) -> None:
    rules = FeatureRules({"extract": {"when": {"type": "datetime", "elements": elements}}}).fit([{"when": value}])
    out = attempt(lambda: rules.transform([{"when": value}]))
    if isinstance(out, InvalidInput):
        assert out.details == {"row": 0, "column": "when", "rule": "extract"}
        return
    for element in elements:
        derived = out[0][f"when_{element}"]
        if element == "epoch":
            assert isinstance(derived, float)
            assert math.isfinite(derived)
        else:
            assert type(derived) is int


@PROPERTIES
@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2999, 1, 1)), st.timezones())
def test_extract_reads_an_offset_and_epoch_seconds_as_the_same_moment(moment: datetime, zone: Any) -> None:
    aware = moment.replace(tzinfo=UTC).astimezone(zone)
    epoch = (moment - datetime(1970, 1, 1)) / timedelta(seconds=1)
    rules = FeatureRules({"extract": {"when": {"type": "datetime", "elements": ELEMENTS}}}).fit([{"when": epoch}])
    from_text, from_epoch = rules.transform([{"when": aware.isoformat()}, {"when": epoch}])
    assert from_text == pytest.approx(from_epoch, abs=1e-3)


@PROPERTIES
@given(st.lists(st.lists(FINITE | st.none(), max_size=6), min_size=1, max_size=4), st.lists(FINITE, max_size=9))
def test_expand_width_is_learnt_at_fit_and_kept(fit_series: list[list[Any]], series: list[float]) -> None:
    fit_rows = [{"series": values} for values in fit_series]
    rules = attempt(lambda: FeatureRules({"expand": {"series": "columns"}}).fit(fit_rows))
    if isinstance(rules, InvalidInput):
        assert rules.details["column"] == "series"
        assert all(not [v for v in values if v is not None] for values in fit_series)
        return
    width = max(len(values) for values in fit_series)
    [row] = rules.transform([{"series": series}])
    padded = [*series[:width], *[None] * (width - len(series))]
    assert [row[f"series_{position}"] for position in range(width)] == padded
    assert len(rules.derived_columns_) == width


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"n_estimators": 10**9}, "may be at most 100"),
        ({"n_jobs": -1}, "may only be 1"),
    ],
)
def test_classify_params_that_would_not_finish_inside_a_request_are_refused(
    params: dict[str, Any], problem: str
) -> None:
    with pytest.raises(InvalidInput, match=problem):
        validate_rules({"classify": {"series": {"method": "random_forest", "params": params}}})
