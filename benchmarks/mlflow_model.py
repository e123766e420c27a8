"""Run inside the MLflow venv (build/tools/mlflow) by bench.py: the issue's model, fitted once, saved twice.

RandomForestClassifier(n_estimators=100, random_state=0) fitted on scikit-learn's breast_cancer DataFrame.
The same fitted object is written as a joblib file (what lrnstak gets through POST /models/{name}) and as an
MLflow model folder (mlflow.sklearn.save_model, what `mlflow models serve` loads), next to the feature rows
both servers are sent. scikit-learn, numpy and joblib are the project's versions (requirements/mlflow-bench.txt).

    python mlflow_model.py OUT_DIR
"""

import json
import shutil
import sys
from pathlib import Path

import joblib
import mlflow.sklearn
from mlflow.models import infer_signature
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    frame = load_breast_cancer(as_frame=True)
    features = frame.data
    model = RandomForestClassifier(n_estimators=100, random_state=0).fit(features, frame.target)
    joblib.dump(model, out / "model.joblib")
    signature = infer_signature(features.head(5), model.predict(features.head(5)))
    target = out / "mlflow-model"
    shutil.rmtree(target, ignore_errors=True)
    # cloudpickle: MLflow 3's default (skops) refuses to load a forest's trees unless each type is trusted.
    mlflow.sklearn.save_model(
        model, str(target), signature=signature, serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE
    )
    rows = [{column: float(value) for column, value in row.items()} for row in features.to_dict(orient="records")]
    (out / "rows.json").write_text(json.dumps({"columns": list(features.columns), "rows": rows}))
    print(json.dumps({"rows": len(rows), "columns": len(features.columns)}))


if __name__ == "__main__":
    main()
