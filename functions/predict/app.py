"""The predict function: serves predictions from registered models (issue: predict)."""

from mangum import Mangum

from lrnstak.http import create_app, pending_router, wrap_handler

router = pending_router(
    "predict",
    [
        ("POST", "/predict/model/{name}", "predict"),
        ("POST", "/predict/model/{name}/batch", "predict_batch"),
        ("GET", "/predict/jobs/{job_id}", "get_prediction_job"),
    ],
)

app = create_app("predict", [router])
handler = wrap_handler(Mangum(app, lifespan="off"))
