"""FeatureRules: each rule's values computed independently here, the spec's errors, and life inside pipelines."""

import calendar
import copy
import math
import pickle
import statistics
from datetime import date, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.ensemble import RandomForestRegressor
from sklearn.exceptions import NotFittedError
from sklearn.feature_extraction import DictVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeRegressor
from sklearn.utils import get_tags

from lrnstak.errors import InvalidInput
from lrnstak.ml.rules import SUPPORTED_RULES, FeatureRules, validate_rules
from lrnstak.ml.safe_loading import dump_model, load_model

Rows = list[dict[str, Any]]

ALL_ELEMENTS = [
    "year",
    "month",
    "day",
    "hour",
    "minute",
    "second",
    "day_of_week",
    "day_of_year",
    "week_of_year",
    "quarter",
    "is_weekend",
    "epoch",
]
ALL_OPS = ["sum", "min", "max", "avg", "mean", "first", "last", "std", "count", "norm"]
STATS = ["next", "min", "max", "mean"]


def run(spec: dict[str, Any], rows: Rows, fit_rows: Rows | None = None) -> Rows:
    return FeatureRules(spec).fit(fit_rows if fit_rows is not None else rows).transform(rows)


def only(row: dict[str, Any], prefix: str = "", suffix: str = "") -> dict[str, Any]:
    return {key: value for key, value in row.items() if key.startswith(prefix) and key.endswith(suffix)}


def classify_outputs(method: str, column: str, rows: Rows) -> list[list[Any]]:
    return [[row[f"{method}_{column}_{stat}"] for stat in STATS] for row in rows]


def by_hand(regressor: Any, pairs: list[list[float]], targets: list[float], window: list[float]) -> list[float]:
    """The four classify outputs from a regressor fitted here, on pairs written out in the test."""
    regressor.fit(np.array(pairs), np.array(targets))
    fitted = regressor.predict(np.array(pairs))
    following = float(regressor.predict(np.array([window]))[0])
    return [following, float(fitted.min()), float(fitted.max()), float(fitted.mean())]


# ---------------------------------------------------------------------------------------------------
# extract


def expected_datetime(
    year: int, month: int, day: int, hour: int, minute: int, second: float, weekday: int, yday: int, iso_week: int
) -> dict[str, Any]:
    """What extract should give, from calendar facts written out by hand; epoch from calendar.timegm."""
    whole = int(second)
    epoch = calendar.timegm((year, month, day, hour, minute, whole, 0, 0, 0)) + (second - whole)
    return {
        "year": year,
        "month": month,
        "day": day,
        "hour": hour,
        "minute": minute,
        "second": whole,
        "day_of_week": weekday,
        "day_of_year": yday,
        "week_of_year": iso_week,
        "quarter": (month + 2) // 3,
        "is_weekend": 1 if weekday >= 5 else 0,
        "epoch": epoch,
    }


DATETIMES = [
    # 2024-03-09 is a Saturday, the 69th day of a leap year, in ISO week 10.
    pytest.param("2024-03-09T13:45:30Z", expected_datetime(2024, 3, 9, 13, 45, 30, 5, 69, 10), id="zulu"),
    # An offset crosses midnight into Sunday once converted to UTC.
    pytest.param("2024-03-09T23:30:00-05:00", expected_datetime(2024, 3, 10, 4, 30, 0, 6, 70, 10), id="offset"),
    pytest.param("2024-03-10T09:15:00+05:30", expected_datetime(2024, 3, 10, 3, 45, 0, 6, 70, 10), id="plus-offset"),
    # A Monday that belongs to ISO week 1 of the next year; naive times are taken as UTC.
    pytest.param("2024-12-30 08:00:00", expected_datetime(2024, 12, 30, 8, 0, 0, 0, 365, 1), id="space-naive"),
    # A Sunday in ISO week 52 of the previous year; a date alone is midnight.
    pytest.param("2023-01-01", expected_datetime(2023, 1, 1, 0, 0, 0, 6, 1, 52), id="date-only"),
    pytest.param(
        "2023-07-04T12:00:00.250+00:00", expected_datetime(2023, 7, 4, 12, 0, 0.25, 1, 185, 27), id="fraction"
    ),
    pytest.param(1_000_000_000, expected_datetime(2001, 9, 9, 1, 46, 40, 6, 252, 36), id="epoch-int"),
    pytest.param(0, expected_datetime(1970, 1, 1, 0, 0, 0, 3, 1, 1), id="epoch-zero"),
    pytest.param(-1.5, expected_datetime(1969, 12, 31, 23, 59, 58.5, 2, 365, 1), id="epoch-negative-float"),
]


@pytest.mark.parametrize(("value", "expected"), DATETIMES)
def test_extract_gives_every_element_in_utc(value: Any, expected: dict[str, Any]) -> None:
    spec = {"extract": {"when": {"type": "datetime", "elements": ALL_ELEMENTS}}}
    [row] = run(spec, [{"when": value}])
    got = {key.removeprefix("when_"): got for key, got in row.items()}
    assert got == pytest.approx(expected, abs=1e-6)
    assert all(type(got[name]) is int for name in ALL_ELEMENTS if name != "epoch")


def test_extract_takes_python_datetimes_and_dates_from_sdk_callers() -> None:
    spec = {"extract": {"when": {"type": "datetime", "elements": ["day", "hour", "epoch"]}}}
    plus_two = timezone(timedelta(hours=2))
    rows = run(spec, [{"when": datetime(2024, 3, 10, 1, 0, tzinfo=plus_two)}, {"when": date(2024, 3, 10)}])
    assert rows == [
        {"when_day": 9, "when_hour": 23, "when_epoch": calendar.timegm((2024, 3, 9, 23, 0, 0, 0, 0, 0))},
        {"when_day": 10, "when_hour": 0, "when_epoch": calendar.timegm((2024, 3, 10, 0, 0, 0, 0, 0, 0))},
    ]


def test_extract_accepts_the_old_stacks_pandas_spellings() -> None:
    spec = {"extract": {"when": {"type": "datetime", "elements": ["dayofweek", "dayofyear", "week", "weekofyear"]}}}
    [row] = run(spec, [{"when": "2024-03-09T13:45:30Z"}])
    assert row == {"when_dayofweek": 5, "when_dayofyear": 69, "when_week": 10, "when_weekofyear": 10}


def test_extract_missing_values_give_none() -> None:
    spec = {"extract": {"when": {"type": "datetime", "elements": ["year", "is_weekend"]}}}
    rows = run(spec, [{"when": "2024-01-01", "k": 1}, {"when": None, "k": 2}, {"k": 3}, {"when": math.nan, "k": 4}])
    assert rows == [
        {"k": 1, "when_year": 2024, "when_is_weekend": 0},
        {"k": 2, "when_year": None, "when_is_weekend": None},
        {"k": 3, "when_year": None, "when_is_weekend": None},
        {"k": 4, "when_year": None, "when_is_weekend": None},
    ]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("yesterday", "cannot read 'yesterday' as an ISO-8601 datetime"),
        ("", "cannot read '' as an ISO-8601 datetime"),
        ("2024-13-01", "cannot read '2024-13-01'"),
        ([2024, 1, 1], "expected an ISO-8601 datetime string or epoch seconds, got list"),
        (True, "got bool"),
        (1e20, "out of range"),
        (math.inf, "out of range"),
        ("0001-01-01T00:30:00+01:00", "out of range once converted to UTC"),
    ],
)
def test_extract_rejects_what_is_not_a_datetime_naming_row_and_column(value: Any, problem: str) -> None:
    spec = {"extract": {"when": {"type": "datetime", "elements": ["year"]}}}
    rules = FeatureRules(spec).fit([{"when": "2024-01-01"}])
    with pytest.raises(InvalidInput) as raised:
        rules.transform([{"when": "2024-01-01"}, {"when": value}])
    assert raised.value.message.startswith("Row 1, column 'when' (extract): ")
    assert problem in raised.value.message
    assert raised.value.details == {"row": 1, "column": "when", "rule": "extract"}


# ---------------------------------------------------------------------------------------------------
# flatten


def test_flatten_every_op_over_the_non_missing_elements() -> None:
    values = [3, None, 1, 4, math.nan, 1, 5]
    present = [3.0, 1.0, 4.0, 1.0, 5.0]
    [row] = run({"flatten": {"x": ALL_OPS}}, [{"x": values}])
    assert row == pytest.approx(
        {
            "sum_x": 14.0,
            "min_x": 1.0,
            "max_x": 5.0,
            "avg_x": 2.8,
            "mean_x": 2.8,
            "first_x": 3.0,
            "last_x": 5.0,
            # population standard deviation: mean of squared deviations 12.8 / 5 = 2.56
            "std_x": 1.6,
            "count_x": 5,
            "norm_x": math.sqrt(9 + 1 + 16 + 1 + 25),
        }
    )
    assert row["std_x"] == pytest.approx(statistics.pstdev(present))
    assert row["count_x"] == 5
    assert type(row["count_x"]) is int


def test_flatten_on_floats_matches_arithmetic_by_hand() -> None:
    values = [0.5, -2.25, 10.0, 3.125]
    [row] = run({"flatten": {"x": ["sum", "mean", "std", "norm"]}}, [{"x": values}])
    mean = sum(values) / 4
    assert row["sum_x"] == pytest.approx(11.375)
    assert row["mean_x"] == pytest.approx(mean)
    assert row["std_x"] == pytest.approx(math.sqrt(sum((v - mean) ** 2 for v in values) / 4))
    assert row["norm_x"] == pytest.approx(math.sqrt(sum(v * v for v in values)))


@pytest.mark.parametrize("empty", [[], [None, None], [math.nan]], ids=["empty", "all-none", "all-nan"])
def test_flatten_of_an_array_without_values_counts_zero_and_sums_zero(empty: list[Any]) -> None:
    [row] = run({"flatten": {"x": ALL_OPS}}, [{"x": empty}])
    assert row == {f"{op}_x": None for op in ALL_OPS} | {"sum_x": 0.0, "count_x": 0}


def test_flatten_takes_a_single_op_or_a_list_and_a_missing_array_gives_none() -> None:
    rows = run({"flatten": {"a": "max", "b": ["min", "count"]}}, [{"a": [1, 7], "b": [2, 3]}, {"a": None}])
    assert rows == [
        {"max_a": 7.0, "min_b": 2.0, "count_b": 2},
        {"max_a": None, "min_b": None, "count_b": None},
    ]


@pytest.mark.parametrize(
    ("value", "problem", "details"),
    [
        ("1,2,3", "expected an array of numbers, got str", {}),
        (5, "expected an array of numbers, got int", {}),
        ({"a": 1}, "expected an array of numbers, got dict", {}),
        ([1, "2"], "element 1 is str, not a number", {"element": 1}),
        ([1, 2, [3]], "element 2 is list, not a number", {"element": 2}),
        ([True], "element 0 is bool, not a number", {"element": 0}),
        ([1, math.inf], "element 1 is not a finite number", {"element": 1}),
        ([10**400], "element 0 is not a finite number", {"element": 0}),
    ],
)
def test_flatten_rejects_what_is_not_a_number_array(value: Any, problem: str, details: dict[str, Any]) -> None:
    rules = FeatureRules({"flatten": {"x": "sum"}}).fit([{"x": [1]}])
    with pytest.raises(InvalidInput) as raised:
        rules.transform([{"x": [1]}, {"x": [2]}, {"x": value}])
    assert raised.value.message == f"Row 2, column 'x' (flatten): {problem}."
    assert raised.value.details == {"row": 2, "column": "x", "rule": "flatten", **details}


# ---------------------------------------------------------------------------------------------------
# expand


def test_expand_learns_its_width_at_fit_then_pads_and_cuts() -> None:
    training = [{"x": [1, 2]}, {"x": [1, 2, 3, 4]}, {"x": None}, {"y": 0}, {"x": [5, 6, 7]}]
    rules = FeatureRules({"expand": {"x": "columns"}}).fit(training)
    assert rules.expand_widths_ == {"x": 4}
    assert rules.derived_columns_ == ["x_0", "x_1", "x_2", "x_3"]
    rows = rules.transform([{"x": [1, 2, 3, 4, 5, 6]}, {"x": [9]}, {"x": []}, {"x": [1, None, 3]}, {"z": 1}])
    assert rows == [
        {"x_0": 1.0, "x_1": 2.0, "x_2": 3.0, "x_3": 4.0},
        {"x_0": 9.0, "x_1": None, "x_2": None, "x_3": None},
        {"x_0": None, "x_1": None, "x_2": None, "x_3": None},
        {"x_0": 1.0, "x_1": None, "x_2": 3.0, "x_3": None},
        {"z": 1, "x_0": None, "x_1": None, "x_2": None, "x_3": None},
    ]


def test_expand_width_does_not_follow_the_rows_being_transformed() -> None:
    rules = FeatureRules({"expand": {"x": "columns"}}).fit([{"x": [1, 2]}])
    assert rules.transform([{"x": [1, 2, 3, 4, 5]}]) == [{"x_0": 1.0, "x_1": 2.0}]
    # Refitting learns the new width.
    assert rules.fit([{"x": [1, 2, 3]}]).derived_columns_ == ["x_0", "x_1", "x_2"]


def test_expand_needs_a_non_empty_array_at_fit() -> None:
    with pytest.raises(InvalidInput, match=r"expand on column 'x': no training row has a non-empty array") as raised:
        FeatureRules({"expand": {"x": "columns"}}).fit([{"x": []}, {"x": None}])
    assert raised.value.details == {"rule": "expand", "column": "x"}


def test_expand_at_fit_rejects_a_non_array_naming_the_row() -> None:
    with pytest.raises(InvalidInput) as raised:
        FeatureRules({"expand": {"x": "columns"}}).fit([{"x": [1]}, {"x": "[1, 2]"}])
    assert raised.value.message == "Row 1, column 'x' (expand): expected an array of numbers, got str."


# ---------------------------------------------------------------------------------------------------
# classify


def test_classify_linear_regression_on_a_ramp_predicts_the_next_step() -> None:
    spec = {"classify": {"x": {"method": "linear_regression"}}}
    rows = run(spec, [{"x": [1, 2, 3, 4, 5]}, {"x": [10, 8, 6]}])
    # lag 1 on a ramp: y = x + 1 exactly; in-sample predictions are x_1..x_4.
    assert classify_outputs("linear_regression", "x", rows) == [
        pytest.approx([6.0, 2.0, 5.0, 3.5]),
        pytest.approx([4.0, 6.0, 8.0, 7.0]),
    ]


def test_classify_linear_regression_matches_one_fitted_by_hand_with_two_lags() -> None:
    series = [5.0, 10.0, 70.0, 120.0, 150.0, 90.0, 60.0]
    spec = {"classify": {"x": {"method": "linear_regression", "params": {"lags": 2}}}}
    [row] = run(spec, [{"x": series}])
    pairs = [[5.0, 10.0], [10.0, 70.0], [70.0, 120.0], [120.0, 150.0], [150.0, 90.0]]
    targets = [70.0, 120.0, 150.0, 90.0, 60.0]
    expected = by_hand(LinearRegression(), pairs, targets, window=[90.0, 60.0])
    assert classify_outputs("linear_regression", "x", [row]) == [pytest.approx(expected)]
    # Not lag 1 in disguise.
    lag_one = run({"classify": {"x": {"method": "linear_regression"}}}, [{"x": series}])
    assert classify_outputs("linear_regression", "x", lag_one) != [pytest.approx(expected)]


def test_classify_linear_regression_with_three_lags_matches_by_hand() -> None:
    series = [2.0, -1.0, 4.0, 3.0, 7.0, 5.0, 9.0, 6.0]
    spec = {"classify": {"s": {"method": "linear_regression", "params": {"lags": 3}}}}
    [row] = run(spec, [{"s": series}])
    pairs = [[2.0, -1.0, 4.0], [-1.0, 4.0, 3.0], [4.0, 3.0, 7.0], [3.0, 7.0, 5.0], [7.0, 5.0, 9.0]]
    targets = [3.0, 7.0, 5.0, 9.0, 6.0]
    expected = by_hand(LinearRegression(), pairs, targets, window=[5.0, 9.0, 6.0])
    assert classify_outputs("linear_regression", "s", [row]) == [pytest.approx(expected)]


def test_classify_skips_pairs_with_missing_values_instead_of_closing_the_gap() -> None:
    spec = {"classify": {"x": {"method": "linear_regression"}}}
    [row] = run(spec, [{"x": [1, 2, None, 4, 5, 6]}])
    # Kept pairs: 1->2, 4->5, 5->6 (all y = x + 1); dropping the None instead would pair 2->4.
    assert classify_outputs("linear_regression", "x", [row]) == [pytest.approx([7.0, 2.0, 6.0, 13 / 3])]


def test_classify_next_is_none_when_the_last_window_has_a_gap() -> None:
    spec = {"classify": {"x": {"method": "linear_regression", "params": {"lags": 1}}}}
    [row] = run(spec, [{"x": [1, 2, 3, None]}])
    assert classify_outputs("linear_regression", "x", [row]) == [[None, pytest.approx(2.0), pytest.approx(3.0), 2.5]]


@pytest.mark.parametrize(
    ("series", "lags"),
    [([7], 1), ([], 1), ([1, 2, 3], 3), ([1, None, 3, None], 1)],
    ids=["one-point", "empty", "k-points", "gaps-everywhere"],
)
def test_classify_without_one_complete_pair_gives_none(series: list[Any], lags: int) -> None:
    spec = {"classify": {"x": {"method": "linear_regression", "params": {"lags": lags}}}}
    fit_rows = [{"x": [1, 2, 3, 4, 5]}]
    assert classify_outputs("linear_regression", "x", run(spec, [{"x": series}], fit_rows)) == [[None] * 4]


def test_classify_missing_array_gives_none() -> None:
    spec = {"classify": {"x": {"method": "ridge"}}}
    rows = run(spec, [{"x": None, "k": 1}, {"k": 2}], fit_rows=[{"x": [1, 2, 3]}])
    assert rows == [
        {"k": 1} | {f"ridge_x_{stat}": None for stat in STATS},
        {"k": 2} | {f"ridge_x_{stat}": None for stat in STATS},
    ]


def test_classify_knn_caps_neighbours_at_the_number_of_pairs() -> None:
    [row] = run({"classify": {"x": {"method": "knn"}}}, [{"x": [1, 2, 4]}])
    # Two pairs (1->2, 2->4) and 3 neighbours asked for: both pairs are the neighbours of everything.
    assert classify_outputs("knn", "x", [row]) == [pytest.approx([3.0, 3.0, 3.0, 3.0])]
    [one] = run({"classify": {"x": {"method": "knn", "params": {"n_neighbors": 1}}}}, [{"x": [1, 2, 4]}])
    # One neighbour: in-sample predictions are the targets; after 4 the nearest x is 2, whose y was 4.
    assert classify_outputs("knn", "x", [one]) == [pytest.approx([4.0, 2.0, 4.0, 3.0])]


SERIES = [1.0, 5.0, 2.0, 8.0, 3.0, 9.0, 4.0, 7.0, 2.0]
LAG_ONE_PAIRS = [[value] for value in SERIES[:-1]]
LAG_ONE_TARGETS = SERIES[1:]


@pytest.mark.parametrize(
    ("method", "params", "regressor"),
    [
        ("decision_tree", {}, DecisionTreeRegressor(random_state=0)),
        ("decision_tree", {"max_depth": 1}, DecisionTreeRegressor(max_depth=1, random_state=0)),
        ("random_forest", {}, RandomForestRegressor(n_estimators=10, random_state=0)),
        (
            "random_forest",
            {"n_estimators": 3, "random_state": 7},
            RandomForestRegressor(n_estimators=3, random_state=7),
        ),
        ("ridge", {"alpha": 10.0}, Ridge(alpha=10.0)),
        ("knn", {"n_neighbors": 2, "weights": "distance"}, KNeighborsRegressor(n_neighbors=2, weights="distance")),
    ],
)
def test_classify_methods_match_their_regressor_fitted_by_hand(
    method: str, params: dict[str, Any], regressor: Any
) -> None:
    [row] = run({"classify": {"x": {"method": method, "params": params}}}, [{"x": SERIES}])
    expected = by_hand(regressor, LAG_ONE_PAIRS, LAG_ONE_TARGETS, window=[SERIES[-1]])
    assert classify_outputs(method, "x", [row]) == [pytest.approx(expected)]


def test_classify_params_reach_the_regressor() -> None:
    """The by-hand comparisons above would pass if params were ignored and defaults happened to agree: check not."""
    shallow = run({"classify": {"x": {"method": "decision_tree", "params": {"max_depth": 1}}}}, [{"x": SERIES}])
    deep = run({"classify": {"x": {"method": "decision_tree"}}}, [{"x": SERIES}])
    ridge = run({"classify": {"x": {"method": "ridge", "params": {"alpha": 10.0}}}}, [{"x": SERIES}])
    plain = run({"classify": {"x": {"method": "linear_regression"}}}, [{"x": SERIES}])
    assert classify_outputs("decision_tree", "x", shallow) != classify_outputs("decision_tree", "x", deep)
    assert classify_outputs("ridge", "x", ridge)[0] != pytest.approx(
        classify_outputs("linear_regression", "x", plain)[0]
    )


def test_classify_defaults_to_the_old_stacks_decision_tree() -> None:
    assert validate_rules({"classify": {"x": {}}}) == {
        "classify": {"x": {"method": "decision_tree", "params": {"lags": 1}}}
    }
    [row] = run({"classify": {"x": {}}}, [{"x": [50, 50, 50, 4, 2]}])
    expected = by_hand(
        DecisionTreeRegressor(random_state=0), [[50.0], [50.0], [50.0], [4.0]], [50.0, 50.0, 4.0, 2.0], [2.0]
    )
    assert classify_outputs("decision_tree", "x", [row]) == [pytest.approx(expected)]


def test_classify_a_fit_that_fails_on_the_data_names_row_and_column(monkeypatch: pytest.MonkeyPatch) -> None:
    rules = FeatureRules({"classify": {"x": {"method": "linear_regression"}}}).fit([{"x": [1, 2, 3]}])

    def refuse(self: LinearRegression, *_args: Any, **_kwargs: Any) -> LinearRegression:
        raise ValueError("singular matrix")

    monkeypatch.setattr(LinearRegression, "fit", refuse)
    with pytest.raises(InvalidInput) as raised:
        rules.transform([{"x": [4, 5, 6]}])
    assert raised.value.message == (
        "Row 0, column 'x' (classify): linear_regression could not be fitted: singular matrix"
    )
    assert raised.value.details == {"row": 0, "column": "x", "rule": "classify", "method": "linear_regression"}


# ---------------------------------------------------------------------------------------------------
# Rows and columns


FULL_SPEC: dict[str, Any] = {
    "expand": {"prices": "columns"},
    "classify": {"prices": {"method": "linear_regression", "params": {"lags": 1}}},
    "flatten": {"volumes": ["sum", "max"], "prices": "last"},
    "extract": {"when": {"type": "datetime", "elements": ["month", "year"]}},
}
FULL_ROWS: Rows = [
    {"id": 1, "when": "2024-02-01T00:00:00Z", "prices": [1, 2, 3], "volumes": [10, 20], "close": 3.5},
    {"id": 2, "when": "2024-05-01", "prices": [4, 5], "volumes": [], "close": 4.5},
]
FULL_DERIVED = [
    "when_year",
    "when_month",
    "last_prices",
    "sum_volumes",
    "max_volumes",
    "linear_regression_prices_next",
    "linear_regression_prices_min",
    "linear_regression_prices_max",
    "linear_regression_prices_mean",
    "prices_0",
    "prices_1",
    "prices_2",
]


def test_several_rules_on_one_column_consume_it_once() -> None:
    rules = FeatureRules(FULL_SPEC).fit(FULL_ROWS)
    assert rules.consumed_columns_ == ["prices", "volumes", "when"]
    assert rules.derived_columns_ == FULL_DERIVED
    first, second = rules.transform(FULL_ROWS)
    assert first == pytest.approx(
        {
            "id": 1,
            "close": 3.5,
            "when_year": 2024,
            "when_month": 2,
            "last_prices": 3.0,
            "sum_volumes": 30.0,
            "max_volumes": 20.0,
            "linear_regression_prices_next": 4.0,
            "linear_regression_prices_min": 2.0,
            "linear_regression_prices_max": 3.0,
            "linear_regression_prices_mean": 2.5,
            "prices_0": 1.0,
            "prices_1": 2.0,
            "prices_2": 3.0,
        }
    )
    assert list(first) == ["id", "close", *FULL_DERIVED]
    assert second["sum_volumes"] == 0.0
    assert second["max_volumes"] is None
    assert second["prices_2"] is None
    # One pair (4->5): a LinearRegression fitted on one point predicts that point's target everywhere.
    assert [second[f"linear_regression_prices_{stat}"] for stat in STATS] == pytest.approx([5.0, 5.0, 5.0, 5.0])


def test_derived_columns_do_not_depend_on_the_order_the_spec_was_written_in() -> None:
    reordered = {
        "extract": {"when": {"elements": ["year", "month", "year"], "type": "datetime"}},
        "flatten": {"prices": ["last"], "volumes": ["max", "sum"]},
        "classify": {"prices": {"params": {"lags": 1}, "method": "linear_regression"}},
        "expand": {"prices": "columns"},
    }
    assert validate_rules(reordered) == validate_rules(FULL_SPEC)
    assert FeatureRules(reordered).fit(FULL_ROWS).derived_columns_ == FULL_DERIVED
    assert FeatureRules(FULL_SPEC).fit(list(reversed(FULL_ROWS))).derived_columns_ == FULL_DERIVED


def test_transform_does_not_mutate_its_input() -> None:
    rows = copy.deepcopy(FULL_ROWS)
    rules = FeatureRules(FULL_SPEC)
    spec_before = copy.deepcopy(FULL_SPEC)
    out = rules.fit_transform(rows)
    out[0]["id"] = 99
    assert rows == FULL_ROWS
    assert spec_before == FULL_SPEC
    assert all(new is not old for new, old in zip(out, rows, strict=True))
    assert "prices" in rows[0]


def test_a_column_absent_from_some_rows_is_missing_there() -> None:
    rows = run({"flatten": {"x": "sum"}}, [{"x": [1, 2]}, {"y": 1}])
    assert rows == [{"sum_x": 3.0}, {"y": 1, "sum_x": None}]


@pytest.mark.parametrize("rule", ["extract", "flatten", "expand", "classify"])
def test_a_column_absent_from_every_training_row_is_refused_naming_it(rule: str) -> None:
    settings = {
        "extract": {"type": "datetime", "elements": ["year"]},
        "flatten": "sum",
        "expand": "columns",
        "classify": {"method": "ridge"},
    }[rule]
    with pytest.raises(InvalidInput) as raised:
        FeatureRules({rule: {"prices": settings}}).fit([{"price": [1, 2]}, {"close": 1}])
    assert raised.value.message == f"{rule} on column 'prices': no training row has this column."
    assert raised.value.details == {"rule": rule, "column": "prices"}


def test_rules_that_derive_the_same_column_are_refused() -> None:
    spec = {"extract": {"sum": {"type": "datetime", "elements": ["year"]}}, "flatten": {"year": "sum"}}
    with pytest.raises(InvalidInput, match=r"derive the same column 'sum_year'") as raised:
        FeatureRules(spec).fit([{"sum": "2024-01-01", "year": [1]}])
    assert raised.value.details == {"columns": ["sum_year"]}


def test_a_derived_column_that_would_overwrite_an_input_column_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"derive column 'sum_x', which the rows already have") as raised:
        FeatureRules({"flatten": {"x": "sum"}}).fit([{"x": [1], "sum_x": 5}])
    assert raised.value.details == {"columns": ["sum_x"]}


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("rows", "Rows must be a list of objects, got str."),
        ({"x": [1]}, "Rows must be a list of objects, got dict."),
        ([{"x": [1]}, [1, 2]], "Row 1 must be an object, got list."),
        ([{"x": [1]}, None], "Row 1 must be an object, got null."),
    ],
)
def test_rows_that_are_not_a_list_of_objects_are_refused(rows: Any, message: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        FeatureRules({"flatten": {"x": "sum"}}).fit(rows)
    assert raised.value.message == message


def test_tuples_and_object_arrays_of_rows_are_rows_too() -> None:
    rules = FeatureRules({"flatten": {"x": "sum"}}).fit(({"x": [1]},))
    assert rules.transform(np.array([{"x": [1, 2]}, {"x": None}], dtype=object)) == [{"sum_x": 3.0}, {"sum_x": None}]


def test_no_rules_copies_the_rows() -> None:
    rows = [{"a": 1, "b": [1, 2]}]
    for spec in (None, {}, {"flatten": {}}):
        rules = FeatureRules(spec).fit(rows)
        out = rules.transform(rows)
        assert out == rows
        assert out[0] is not rows[0]
        assert rules.consumed_columns_ == []
        assert rules.derived_columns_ == []


# ---------------------------------------------------------------------------------------------------
# The spec


def test_supported_rules() -> None:
    assert frozenset({"extract", "flatten", "expand", "classify"}) == SUPPORTED_RULES


def test_validate_rules_normalises_to_a_canonical_spec() -> None:
    spec = {
        "flatten": {"b": "sum", "a": ["max", "sum", "max"]},
        "classify": {"a": {"method": "random_forest", "params": {"n_estimators": 5, "lags": 2}}},
        "extract": {"d": {"type": "datetime", "elements": ["epoch", "year"]}},
        "expand": {},
    }
    before = copy.deepcopy(spec)
    assert validate_rules(spec) == {
        "extract": {"d": {"type": "datetime", "elements": ["year", "epoch"]}},
        "flatten": {"a": ["sum", "max"], "b": ["sum"]},
        "classify": {"a": {"method": "random_forest", "params": {"lags": 2, "n_estimators": 5}}},
    }
    assert list(validate_rules(spec)) == ["extract", "flatten", "classify"]
    assert list(validate_rules(spec)["flatten"]) == ["a", "b"]
    assert spec == before
    assert validate_rules(None) == {}


def test_sklearns_own_message_is_what_the_client_reads() -> None:
    with pytest.raises(ValueError, match="max_depth") as sklearn_says:
        DecisionTreeRegressor(max_depth=-1).fit([[0.0], [1.0]], [0.0, 1.0])
    with pytest.raises(InvalidInput) as raised:
        validate_rules({"classify": {"x": {"method": "decision_tree", "params": {"max_depth": -1}}}})
    assert str(sklearn_says.value) in raised.value.message
    assert raised.value.details == {"rule": "classify", "column": "x", "method": "decision_tree", "param": "max_depth"}


SPEC_ERRORS = [
    pytest.param(
        {"pivot": {"x": "columns"}},
        ["Unsupported feature rule 'pivot'", "extract, flatten, classify, expand"],
        {"unsupported_rules": ["pivot"], "supported_rules": ["extract", "flatten", "classify", "expand"]},
        id="pivot",
    ),
    pytest.param(
        {"flatten": {"x": "sum"}, "stages": [], "log": {}},
        ["Unsupported feature rule 'stages', 'log'"],
        {"unsupported_rules": ["stages", "log"]},
        id="unknown-rules",
    ),
    pytest.param(["flatten"], ["Feature rules must be an object", "got list"], {}, id="not-an-object"),
    pytest.param(
        {"flatten": ["x"]}, ["The flatten rule must be an object", "got list"], {"rule": "flatten"}, id="rule"
    ),
    pytest.param({"flatten": {"": "sum"}}, ["names a column ''"], {"rule": "flatten", "column": ""}, id="empty-column"),
    pytest.param(
        {"flatten": {"x": ["sum", "log", "median"]}},
        ["flatten on column 'x'", "unsupported op 'log', 'median'", "supported: sum, min, max"],
        {"rule": "flatten", "column": "x", "unsupported_ops": ["log", "median"]},
        id="op",
    ),
    pytest.param({"flatten": {"x": []}}, ["ops must be a non-empty list"], {"column": "x"}, id="no-ops"),
    pytest.param({"flatten": {"x": 3}}, ["ops must be a non-empty list", "got 3"], {"column": "x"}, id="op-number"),
    pytest.param(
        {"extract": {"d": {"type": "number", "elements": ["year"]}}},
        ["extract on column 'd'", "type 'number' is not supported", "'datetime'"],
        {"rule": "extract", "column": "d", "type": "number"},
        id="extract-type",
    ),
    pytest.param(
        {"extract": {"d": {"elements": ["year"]}}}, ['need "type": "datetime"'], {"column": "d"}, id="extract-no-type"
    ),
    pytest.param(
        {"extract": {"d": {"type": "datetime", "elements": ["year", "fortnight"]}}},
        ["unsupported element 'fortnight'", "week_of_year"],
        {"column": "d", "unsupported_elements": ["fortnight"]},
        id="element",
    ),
    pytest.param(
        {"extract": {"d": {"type": "datetime", "elements": "year"}}},
        ["elements must be a non-empty list of names, got 'year'"],
        {"column": "d"},
        id="elements-string",
    ),
    pytest.param(
        {"extract": {"d": {"type": "datetime", "elements": ["year"], "format": "%Y"}}},
        ["unknown setting 'format'", "type, elements"],
        {"column": "d", "unknown_settings": ["format"]},
        id="extract-setting",
    ),
    pytest.param(
        {"extract": {"d": "datetime"}}, ["settings must be an object", "got str"], {"column": "d"}, id="extract-string"
    ),
    pytest.param(
        {"expand": {"x": "pivot"}},
        ["expand on column 'x'", "mode 'pivot' is not supported", "'columns'"],
        {"rule": "expand", "column": "x", "mode": "pivot"},
        id="expand-pivot",
    ),
    pytest.param(
        {"classify": {"x": {"method": "svm"}}},
        ["classify on column 'x'", "method 'svm' is not supported", "linear_regression, ridge, decision_tree"],
        {"rule": "classify", "column": "x", "method": "svm"},
        id="method",
    ),
    pytest.param(
        {"classify": {"x": "linear_regression"}}, ["settings must be an object"], {"column": "x"}, id="classify-str"
    ),
    pytest.param(
        {"classify": {"x": {"method": "ridge", "parms": {}}}},
        ["unknown setting 'parms'"],
        {"unknown_settings": ["parms"]},
        id="classify-setting",
    ),
    pytest.param(
        {"classify": {"x": {"method": "ridge", "params": [1]}}},
        ["params must be an object"],
        {"column": "x"},
        id="params",
    ),
    pytest.param(
        {"classify": {"x": {"method": "knn", "params": {"n_neighbors": 0}}}},
        ["invalid param 'n_neighbors' for knn", "The 'n_neighbors' parameter of KNeighborsRegressor must be"],
        {"param": "n_neighbors", "method": "knn"},
        id="bad-value",
    ),
    pytest.param(
        {"classify": {"x": {"method": "linear_regression", "params": {"alpha": 1.0}}}},
        ["invalid param 'alpha' for linear_regression", "unexpected keyword argument 'alpha'"],
        {"param": "alpha"},
        id="unknown-param",
    ),
    pytest.param(
        {"classify": {"x": {"method": "knn", "params": {"metric": "mahalanobis"}}}},
        ["params for knn do not work together", "VI"],
        {"method": "knn"},
        id="params-together",
    ),
    pytest.param(
        {"classify": {"x": {"method": "ridge", "params": {"random_state": None}}}},
        ["'random_state' must be an integer"],
        {"param": "random_state"},
        id="random-state-none",
    ),
    pytest.param(
        {"classify": {"x": {"method": "ridge", "params": {"alpha": object()}}}},
        ["param 'alpha' must be a JSON value, got object"],
        {"param": "alpha"},
        id="not-json",
    ),
    *[
        pytest.param(
            {"classify": {"x": {"method": "ridge", "params": {"lags": lags}}}},
            ["param 'lags' must be an integer from 1 to 20", f"got {lags!r}"],
            {"param": "lags", "column": "x"},
            id=f"lags-{lags!r}",
        )
        for lags in (0, 21, "2", True, 2.0, None)
    ],
]


@pytest.mark.parametrize(("spec", "fragments", "details"), SPEC_ERRORS)
def test_validate_rules_names_what_is_wrong(spec: Any, fragments: list[str], details: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput) as raised:
        validate_rules(spec)
    for fragment in fragments:
        assert fragment in raised.value.message
    assert raised.value.details.items() >= details.items()
    assert raised.value.status_code == 400


def test_fit_validates_the_spec_but_init_does_not() -> None:
    rules = FeatureRules({"pivot": {"x": "columns"}})
    assert rules.get_params() == {"rules": {"pivot": {"x": "columns"}}}
    with pytest.raises(InvalidInput, match="Unsupported feature rule 'pivot'"):
        rules.fit([{"x": [1]}])


# ---------------------------------------------------------------------------------------------------
# scikit-learn conventions and persistence


def test_get_params_clone_and_set_params_follow_sklearn_conventions() -> None:
    spec = copy.deepcopy(FULL_SPEC)
    rules = FeatureRules(spec)
    assert rules.get_params() == {"rules": spec}
    assert rules.get_params()["rules"] is spec
    rules.fit(FULL_ROWS)
    cloned = clone(rules)
    assert cloned.get_params() == {"rules": FULL_SPEC}
    assert cloned.rules is not spec
    assert not hasattr(cloned, "rules_")
    assert cloned.fit(FULL_ROWS).transform(FULL_ROWS) == rules.transform(FULL_ROWS)
    cloned.set_params(rules={"flatten": {"volumes": "count"}})
    assert cloned.fit(FULL_ROWS).derived_columns_ == ["count_volumes"]
    assert "FeatureRules(rules=" in repr(rules)


def test_transform_before_fit_raises_not_fitted() -> None:
    with pytest.raises(NotFittedError):
        FeatureRules(FULL_SPEC).transform(FULL_ROWS)


def test_fit_returns_self_ignores_y_and_fit_transform_agrees() -> None:
    rules = FeatureRules(FULL_SPEC)
    assert rules.fit(FULL_ROWS, y=[1.0, 2.0]) is rules
    assert FeatureRules(FULL_SPEC).fit_transform(FULL_ROWS, [1.0, 2.0]) == rules.transform(FULL_ROWS)


def test_tags_say_rows_of_dicts_not_a_matrix() -> None:
    tags = get_tags(FeatureRules())
    assert tags.input_tags.dict
    assert not tags.input_tags.two_d_array
    assert tags.transformer_tags is not None


class RowsToMatrix(TransformerMixin, BaseEstimator):
    """The step after the rules: named columns of the rows into a float matrix, None as NaN."""

    def __init__(self, drop: tuple[str, ...] = ()) -> None:
        self.drop = drop

    def fit(self, rows: Rows, y: Any = None) -> "RowsToMatrix":
        self.columns_ = sorted({key for row in rows for key in row} - set(self.drop))
        return self

    def transform(self, rows: Rows) -> np.ndarray:
        return np.array(
            [[math.nan if row.get(column) is None else float(row[column]) for column in self.columns_] for row in rows]
        )


TRAINING_ROWS: Rows = [
    {"id": i, "when": f"2024-0{1 + i % 9}-1{i % 10}T0{i % 10}:00:00Z", "prices": [i, i + 1.5, 2 * i, i % 3 + 1]}
    for i in range(12)
]
TARGETS = [float(i * 1.5 + (i % 4)) for i in range(12)]
PIPELINE_SPEC: dict[str, Any] = {
    "extract": {"when": {"type": "datetime", "elements": ["month", "day", "hour", "day_of_week"]}},
    "flatten": {"prices": ["mean", "std", "norm"]},
    "expand": {"prices": "columns"},
    "classify": {"prices": {"method": "linear_regression"}},
}


def fitted_pipeline(matrix: Any) -> Pipeline:
    return Pipeline([("rules", FeatureRules(PIPELINE_SPEC)), ("matrix", matrix), ("model", LinearRegression())]).fit(
        TRAINING_ROWS, TARGETS
    )


def test_pipeline_pickles_with_protocol_5_and_predicts_the_same() -> None:
    pipeline = fitted_pipeline(RowsToMatrix(drop=("id",)))
    data = pickle.dumps(pipeline, protocol=5)
    assert data[:2] == b"\x80\x05"
    loaded = pickle.loads(data)
    assert loaded.named_steps["rules"].derived_columns_ == pipeline.named_steps["rules"].derived_columns_
    assert loaded.named_steps["rules"].transform(TRAINING_ROWS) == pipeline.named_steps["rules"].transform(
        TRAINING_ROWS
    )
    np.testing.assert_array_equal(loaded.predict(TRAINING_ROWS), pipeline.predict(TRAINING_ROWS))
    assert not np.isnan(pipeline[:-1].transform(TRAINING_ROWS)).any()


def test_rules_alone_round_trip_through_the_safe_loader() -> None:
    rules = FeatureRules(FULL_SPEC).fit(FULL_ROWS)
    loaded = load_model(dump_model(rules), require_predict=False).estimator
    assert type(loaded) is FeatureRules
    assert loaded.get_params() == rules.get_params()
    assert (loaded.rules_, loaded.expand_widths_, loaded.consumed_columns_, loaded.derived_columns_) == (
        rules.rules_,
        rules.expand_widths_,
        rules.consumed_columns_,
        rules.derived_columns_,
    )
    assert loaded.transform(FULL_ROWS) == rules.transform(FULL_ROWS)


def test_a_pipeline_of_rules_and_sklearn_steps_round_trips_through_the_safe_loader() -> None:
    pipeline = fitted_pipeline(DictVectorizer(sparse=False))
    pipeline.steps.insert(2, ("impute", SimpleImputer()))
    pipeline.fit(TRAINING_ROWS, TARGETS)
    loaded = load_model(dump_model(pipeline), require_predict=True)
    assert loaded.warnings == ()
    np.testing.assert_array_equal(loaded.estimator.predict(TRAINING_ROWS), pipeline.predict(TRAINING_ROWS))
    new_rows = [{"id": 40, "when": 1_700_000_000, "prices": [3, None, 9, 1, 2]}]
    np.testing.assert_array_equal(loaded.estimator.predict(new_rows), pipeline.predict(new_rows))
