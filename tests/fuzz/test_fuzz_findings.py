"""What the fuzzers found, as the requests that showed it, through the functions' Lambda handlers.

Each of these answered 500 before it was fixed; each must now be a 4xx in the one error shape whose message
says what to change.
"""

import json
from typing import Any

import pytest

from lrnstak.storage.clients import AwsClients

from support.events import rest_v1_event
from support.functions import LambdaResponse, invoke
from support.models import model_b64

# An integer of 400 digits: JSON carries it, a float cannot hold it.
HUGE = "1" * 400


def upload_matrix_model() -> None:
    body = {"model": model_b64(), "parameters": {"feature_labels": ["a", "b", "c"]}}
    assert invoke("RegistryFunction", rest_v1_event("POST", "/models/line", body=body)).status == 200


def assert_client_error(response: LambdaResponse, *fragments: str) -> dict[str, Any]:
    assert response.status == 400, response.raw_body
    answer: dict[str, Any] = response.json()
    assert set(answer) == {"error", "request_id"}
    assert set(answer["error"]) == {"code", "message", "details"}
    for fragment in fragments:
        assert fragment in answer["error"]["message"]
    return answer


def test_a_feature_too_large_for_a_float_names_its_row_and_column(aws: AwsClients) -> None:
    upload_matrix_model()
    body = f'{{"data": [{{"a": 1, "b": 2, "c": 3}}, {{"a": {HUGE}, "b": 2, "c": 3}}]}}'.encode()
    response = invoke("PredictFunction", rest_v1_event("POST", "/predict/model/line", body=body))
    answer = assert_client_error(response, "Row 1, column 'a'", "beyond the range")
    assert answer["error"]["details"] == {"row": 1, "column": "a"}


def test_a_csv_cell_too_large_for_a_float_names_its_row_and_column(aws: AwsClients) -> None:
    upload_matrix_model()
    body = f"a,b,c\n1,2,3\n{HUGE},2,3\n".encode()
    event = rest_v1_event("POST", "/predict/model/line", body=body, headers={"Content-Type": "text/csv"})
    assert_client_error(invoke("PredictFunction", event), "Row 1, column 'a'", "beyond the range")


@pytest.mark.parametrize("column", ["a", "extra"])
def test_1e400_anywhere_in_the_rows_is_refused_before_it_reaches_the_answer(aws: AwsClients, column: str) -> None:
    # JSON's 1e400 parses as infinity; echoed back in the answer, it made the JSON encoder fail.
    upload_matrix_model()
    row = {"a": 1, "b": 2, "c": 3, column: "INF"}
    body = json.dumps({"data": [row]}).replace('"INF"', "1e400").encode()
    response = invoke("PredictFunction", rest_v1_event("POST", "/predict/model/line", body=body))
    assert_client_error(response, "`data` row 0", "1e400")


@pytest.mark.parametrize("value", [HUGE, "1e400"])
def test_training_on_a_number_too_large_for_a_float_names_the_column(aws: AwsClients, value: str) -> None:
    rows = [{"x": "X" if index == 3 else index, "y": 2 * index + 0.5} for index in range(10)]
    body = json.dumps({"training_data": rows, "parameters": {"target_label": "y"}}).replace('"X"', value)
    response = invoke("TrainerFunction", rest_v1_event("POST", "/train/line", body=body.encode()))
    assert_client_error(response, "Column 'x'", "beyond the range")


def test_a_flatten_sum_that_overflows_names_row_column_and_rule(aws: AwsClients) -> None:
    rows = [{"s": [1e308, 1e308] if index == 2 else [index, 1], "y": index + 0.5} for index in range(10)]
    parameters = {"target_label": "y", "rules": {"flatten": {"s": ["sum"]}}}
    body = {"training_data": rows, "parameters": parameters}
    response = invoke("TrainerFunction", rest_v1_event("POST", "/train/line", body=body))
    answer = assert_client_error(response, "Row 2, column 's' (flatten)", "sum_s")
    assert answer["error"]["details"]["rule"] == "flatten"


def test_a_classify_rule_asking_for_a_huge_forest_is_refused_before_any_fit(aws: AwsClients) -> None:
    rows = [{"s": [index, index + 1, index + 2], "y": index + 0.5} for index in range(10)]
    rules = {"classify": {"s": {"method": "random_forest", "params": {"n_estimators": 10**9}}}}
    body = {"training_data": rows, "parameters": {"target_label": "y", "rules": rules}}
    response = invoke("TrainerFunction", rest_v1_event("POST", "/train/line", body=body))
    assert_client_error(response, "n_estimators", "at most 100")


def test_a_csv_cell_of_more_than_4300_digits_is_a_client_error(aws: AwsClients) -> None:
    upload_matrix_model()
    body = f"a,b,c\n{'1' * 5000},2,3\n".encode()
    event = rest_v1_event("POST", "/predict/model/line", body=body, headers={"Content-Type": "text/csv"})
    assert invoke("PredictFunction", event).status == 400
