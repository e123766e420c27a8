"""A pipeline lrnstak trained, uploaded back as a model (the file GET /models/{name}/{version} gives, sent to
POST /models/{name}), is predicted from rows as it was trained: it used to be handed a float matrix (500)."""

from lrnstak.ml.predicting import RowInputs, predict, prepare_model
from lrnstak.ml.training import TrainingSpec, train

ROWS = [
    {
        "size": float(index % 7) + index / 100,
        "colour": ["red", "green", "blue"][index % 3],
        "when": f"2026-0{1 + index % 9}-1{index % 10}T10:00:00Z",
        "label": "big" if index % 7 > 3 else "small",
    }
    for index in range(60)
]


def test_an_uploaded_trained_pipeline_reads_rows_and_predicts_as_trained() -> None:
    trained = train(TrainingSpec(rows=ROWS, target="label", algorithms=["random_forest"]))
    served = prepare_model(trained.pipeline, None, {})
    assert served.inputs == RowInputs(numeric=("size",), categorical=("colour", "when"), rule_inputs=())
    rows = [{key: value for key, value in row.items() if key != "label"} for row in ROWS[:10]]
    assert predict(served, rows, with_probabilities=False).values == trained.pipeline.predict(rows).tolist()


def test_an_uploaded_pipeline_with_rules_asks_for_the_columns_its_rules_read() -> None:
    rules = {"extract": {"when": {"type": "datetime", "elements": ["month", "day_of_week"]}}}
    trained = train(TrainingSpec(rows=ROWS, target="label", algorithms=["random_forest"], rules=rules))
    served = prepare_model(trained.pipeline, None, {})
    from_schema = prepare_model(trained.pipeline, trained.feature_schema, {})
    assert served.inputs == from_schema.inputs
    rows = [{key: value for key, value in row.items() if key != "label"} for row in ROWS[:10]]
    assert predict(served, rows, with_probabilities=True).values == trained.pipeline.predict(rows).tolist()
