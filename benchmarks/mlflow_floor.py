"""Run inside the MLflow venv by bench.py: the issue's floor, scikit-learn's own predict on a DataFrame.

Loads the model bench.py built (model.joblib) and waits on stdin; each line `ROWS ITERATIONS` times
`model.predict` on a DataFrame of the first ROWS rows (built once, outside the timing) ITERATIONS times after
a few untimed calls, and answers one JSON line with the seconds of each call. Staying up lets bench.py
interleave the floor with the HTTP scenarios of every repetition without paying pandas' import each time.

    python mlflow_floor.py MODEL_DIR
"""

import json
import sys
import time
from pathlib import Path

import joblib
import pandas as pd

WARMUP = 5


def main() -> None:
    folder = Path(sys.argv[1])
    model = joblib.load(folder / "model.joblib")
    document = json.loads((folder / "rows.json").read_text())
    rows = document["rows"]
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        count, iterations = (int(word) for word in line.split())
        frame = pd.DataFrame([rows[index % len(rows)] for index in range(count)], columns=document["columns"])
        for _ in range(WARMUP):
            model.predict(frame)
        seconds = []
        for _ in range(iterations):
            started = time.perf_counter()
            model.predict(frame)
            seconds.append(time.perf_counter() - started)
        print(json.dumps({"seconds": seconds}), flush=True)


if __name__ == "__main__":
    main()
