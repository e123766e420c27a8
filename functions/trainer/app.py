"""The trainer function: trains, evaluates and registers scikit-learn models (issue: trainer)."""

from mangum import Mangum

from lrnstak.http import create_app, pending_router, wrap_handler

router = pending_router(
    "trainer",
    [
        ("POST", "/train/model/{name}", "train_model"),
        ("POST", "/train/{name}", "train_model_short"),
        ("GET", "/train/jobs", "list_training_jobs"),
        ("GET", "/train/jobs/{job_id}", "get_training_job"),
        ("POST", "/datasets", "create_dataset"),
    ],
)

app = create_app("trainer", [router])
handler = wrap_handler(Mangum(app, lifespan="off"))
