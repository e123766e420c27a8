"""Cold start of the predict function: `import app` and the first prediction, in fresh interpreters.

A model is trained through POST /train/{name} (iris) against moto's server, which runs in this process on
a loopback port (the local stack's EmbeddedAws). Then, several times each, a fresh interpreter:
  service  puts the function's folder and src/ first on sys.path, as Lambda puts /var/task and the layers,
           times `import app`, then one handler call with an API Gateway REST event for one row (registry
           read, S3 get, SHA-256 check, safe unpickle, prediction), then a second call (warm);
  floor    imports sklearn and joblib, joblib.load()s the same model bytes from a file, predicts the same row;
  anatomy  after `import app`, times each step of the first prediction by calling lrnstak's pieces directly.
Service and floor each run twice over: with .pyc files for every module ("cached"), and compiling every
module outside the standard library from source ("source"), which is what Lambda does when a layer ships no
__pycache__ (it cannot write one under /opt). .pyc files live in a temporary folder (-X pycache_prefix), so
nothing is written into the source tree. One more `python -X importtime` run shows where `import app` and
the first prediction spend their time, and whether pandas is imported.
With --packages built, the third-party packages are the ones `sam build` put in .aws-sam/build's layers plus
the runtime's boto3 (build/lambda-runtime), in an isolated interpreter (-I -S), instead of the dev venv.
Figures are printed and written to benchmarks/results/predict_cold.json (predict_cold_built.json with
--packages built); nothing asserts them.
"""

import argparse
import base64
import json
import logging
import os
import py_compile
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from importlib.util import cache_from_source
from pathlib import Path
from typing import Any

import harness  # first: it points boto3 and Powertools at a fake account

from lrnstak.local.bootstrap import create_resources
from lrnstak.local.gateway import load_function_module
from lrnstak.local.server import EmbeddedAws
from lrnstak.local.template import Template
from lrnstak.storage.clients import build_clients

MARKER = "LRNSTAK_BENCH "
SPLIT = "LRNSTAK_BENCH_SPLIT"
MODEL = "iris"
# Heavy or out-of-place modules the predict function should not need.
WATCHED = ("pandas", "pyarrow", "matplotlib", "moto", "yaml", "uvicorn", "httpx", "lrnstak.trainer.service")
STDLIB = sysconfig.get_paths()["stdlib"]
BUILD = harness.ROOT / ".aws-sam" / "build"
LAMBDA_RUNTIME = harness.ROOT / "build" / "lambda-runtime"

# What the fresh interpreters run: argv[1] is the JSON list of folders to put first on sys.path. Nothing but
# `time` is imported before the clock starts.
SERVICE = """
import time
started_at = time.time()
import gc, json, sys
sys.path[:0] = json.loads(sys.argv[1])
event_path, watched = sys.argv[2], sys.argv[3].split(",")
gc_seconds = [0.0]
def timed_collections(phase, info, started=[0.0]):
    if phase == "start":
        started[0] = time.perf_counter()
    else:
        gc_seconds[0] += time.perf_counter() - started[0]
gc.callbacks.append(timed_collections)
clock = time.perf_counter()
import app
imported = time.perf_counter() - clock
gc_import = gc_seconds[0]
after_import = {name: name in sys.modules for name in watched}
modules_after_import = len(sys.modules)
sys.stderr.write(SPLIT + "\\n")
sys.stderr.flush()
class Context:
    function_name = "lrnstak-bench-predict"; function_version = "$LATEST"; memory_limit_in_mb = 1536
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:lrnstak-bench-predict"
    aws_request_id = "cold"; log_group_name = "/aws/lambda/lrnstak-bench"; log_stream_name = "cold"
    def get_remaining_time_in_millis(self): return 29000
with open(event_path) as handle:
    event = json.load(handle)
clock = time.perf_counter()
first = app.handler(event, Context())
first_seconds = time.perf_counter() - clock
gc_first = gc_seconds[0] - gc_import
clock = time.perf_counter()
second = app.handler(event, Context())
second_seconds = time.perf_counter() - clock
files = sorted({m.__file__ for m in list(sys.modules.values()) if getattr(m, "__file__", None)})
print(MARKER + json.dumps({
    "started_at": started_at, "import_s": imported, "first_s": first_seconds, "second_s": second_seconds,
    "gc_import_s": gc_import, "gc_first_s": gc_first,
    "status": [first["statusCode"], second["statusCode"]], "first": first,
    "watched_after_import": after_import, "watched_after_first": {n: n in sys.modules for n in watched},
    "modules_after_import": modules_after_import, "modules_after_first": len(sys.modules), "files": files,
}), flush=True)
"""

FLOOR = """
import time
started_at = time.time()
import json, sys
sys.path[:0] = json.loads(sys.argv[1])
model_path, row = sys.argv[2], json.loads(sys.argv[3])
clock = time.perf_counter()
import joblib, sklearn
imported = time.perf_counter() - clock
clock = time.perf_counter()
model = joblib.load(model_path)
loaded = time.perf_counter() - clock
clock = time.perf_counter()
prediction = model.predict([row]).tolist()
predicted = time.perf_counter() - clock
print(MARKER + json.dumps({
    "started_at": started_at, "import_s": imported, "load_s": loaded, "predict_s": predicted,
    "prediction": prediction, "pandas": "pandas" in sys.modules,
}), flush=True)
"""

ANATOMY = """
import time, json, sys
sys.path[:0] = json.loads(sys.argv[1])
model, row = sys.argv[2], json.loads(sys.argv[3])
import app
from lrnstak.ml.predicting import predict, prepare_model
from lrnstak.ml.safe_loading import load_model, sha256_hex
from lrnstak.settings import get_settings
from lrnstak.storage.artifacts import ArtifactStore
from lrnstak.storage.clients import get_clients
from lrnstak.storage.registry_table import RegistryTable
steps = {}
def step(name, call):
    clock = time.perf_counter()
    value = call()
    steps[name] = time.perf_counter() - clock
    return value
settings = step("settings", get_settings)
clients = step("boto3 clients", get_clients)
table = RegistryTable(clients.dynamodb, settings.registry_table)
artifacts = ArtifactStore(clients.s3, settings.models_bucket)
summary = step("registry: latest", lambda: table.get_summary(model))
record = step("registry: version", lambda: table.get_version(model, summary.latest))
data = step("s3: model bytes", lambda: artifacts.get_bytes(record.artifact_key))
step("sha-256", lambda: sha256_hex(data))
loaded = step("safe unpickle", lambda: load_model(data))
served = step("prepare model", lambda: prepare_model(loaded.estimator, record.feature_schema, record.parameters))
step("predict 1 row (1st)", lambda: predict(served, [row], False))
step("predict 1 row (2nd)", lambda: predict(served, [row], False))
print(MARKER + json.dumps({"steps": steps, "model_bytes": len(data)}), flush=True)
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repetitions", type=int, default=5, help="fresh interpreters per measurement (5)")
    parser.add_argument("--algorithm", default="random_forest", help="algorithm trained on iris (random_forest)")
    parser.add_argument(
        "--bytecode",
        choices=["cached", "source", "both"],
        default="both",
        help="with .pyc files, compiling from source as a layer without __pycache__, or both (both)",
    )
    parser.add_argument(
        "--packages",
        choices=["venv", "built"],
        default="venv",
        help="third-party packages from the dev venv, or from `make build`'s layers (venv)",
    )
    parser.add_argument("--top", type=int, default=15, help="modules listed from -X importtime (15)")
    return parser.parse_args()


# --- the fake AWS, the model and the event -----------------------------------------------------------------


class Setup:
    """moto's server with the template's resources and a trained model; files the children read."""

    def __init__(self, folder: Path, algorithm: str) -> None:
        # moto's werkzeug server logs every request it answers.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self.aws = EmbeddedAws("127.0.0.1")
        self.aws.start()
        os.environ["AWS_ENDPOINT_URL"] = self.aws.endpoint
        template = Template.load()
        references = create_resources(template, build_clients(), harness.RESOURCE_PREFIX)
        for function in template.functions():
            os.environ.update(harness.function_environment(template, references, function))
        self.environment = {**os.environ, **template.function_environment("PredictFunction", references)}
        self.function_dir = template.function_dir("PredictFunction")

        dataset = harness.iris()
        trainer = load_function_module(template, "TrainerFunction").handler
        registry = load_function_module(template, "RegistryFunction").handler
        with harness.stdout_silenced():
            event = harness.rest_v1_event("POST", f"/train/{MODEL}", harness.train_body(dataset, algorithm))
            version = harness.response_json(trainer(event, harness.FakeLambdaContext()))["version"]
            event = harness.rest_v1_event("GET", f"/models/{MODEL}/{version}")
            saved = harness.response_json(registry(event, harness.FakeLambdaContext()))
        self.row = dataset.features(1)[0]
        self.model_path = folder / "model.joblib"
        self.model_path.write_bytes(base64.b64decode(saved["model"]))
        self.event_path = folder / "event.json"
        self.event_path.write_text(
            json.dumps(harness.rest_v1_event("POST", f"/predict/model/{MODEL}", {"data": [self.row]}))
        )

    def stop(self) -> None:
        self.aws.stop()


# --- fresh interpreters --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interpreter:
    """How a child starts: what goes first on sys.path, and where its .pyc files are."""

    paths: list[str]
    bytecode: Path
    # -B: no .pyc written, so whatever the prefix does not hold is compiled from source every time.
    read_only: bool
    # -S: no site-packages of the venv (the packages come from `paths`).
    no_site: bool

    def command(self, importtime: bool = False) -> list[str]:
        flags = ["-I", "-X", f"pycache_prefix={self.bytecode}"]
        flags += ["-B"] if self.read_only else []
        flags += ["-S"] if self.no_site else []
        flags += ["-X", "importtime"] if importtime else []
        return [sys.executable, *flags]


def package_paths(packages: str, function_dir: Path) -> list[str]:
    """Lambda's order: the function's folder (/var/task), the layers (/opt/python), the runtime's boto3."""
    own = [str(function_dir), str(harness.ROOT / "src")]
    if packages == "venv":
        return own
    layers = [BUILD / "SharedLayer" / "python", BUILD / "SklearnLayer" / "python", LAMBDA_RUNTIME]
    missing = [str(path) for path in layers if not path.is_dir()]
    if missing:
        raise SystemExit(f"--packages built needs {', '.join(missing)}: run `make test` (it builds them).")
    return own + [str(path) for path in layers]


def run_child(
    interpreter: Interpreter, program: str, arguments: list[str], setup: Setup, importtime: bool = False
) -> tuple[dict[str, Any], str, float]:
    """The child's report, its stderr, and the wall-clock time at which it was started."""
    code = f"MARKER, SPLIT = {MARKER!r}, {SPLIT!r}\n" + program
    spawned_at = time.time()
    done = subprocess.run(
        [*interpreter.command(importtime), "-c", code, json.dumps(interpreter.paths), *arguments],
        cwd=setup.function_dir,
        env=setup.environment,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARKER)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"child failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    report: dict[str, Any] = json.loads(lines[-1][len(MARKER) :])
    report["prediction_ms"] = emitted_durations(done.stdout)
    return report, done.stderr, spawned_at


def emitted_durations(stdout: str) -> list[float]:
    """PredictionDuration of each invocation, from the metrics lines Powertools prints (the service's time)."""
    durations = []
    for line in stdout.splitlines():
        if line.startswith('{"_aws"') and "PredictionDuration" in line:
            durations.append(float(json.loads(line)["PredictionDuration"][0]))
    return durations


def service_run(interpreter: Interpreter, setup: Setup) -> dict[str, Any]:
    report, _, spawned_at = run_child(interpreter, SERVICE, [str(setup.event_path), ",".join(WATCHED)], setup)
    if report["status"] != [200, 200]:
        raise RuntimeError(f"the predict handler answered {report['status']}: {report['first']}")
    durations = [*report["prediction_ms"], float("nan")]
    return {
        "interpreter_ms": (report["started_at"] - spawned_at) * 1000,
        "import_ms": report["import_s"] * 1000,
        "gc_import_ms": report["gc_import_s"] * 1000,
        "first_ms": report["first_s"] * 1000,
        "first_service_ms": durations[0],
        "gc_first_ms": report["gc_first_s"] * 1000,
        "second_ms": report["second_s"] * 1000,
        "import_and_first_ms": (report["import_s"] + report["first_s"]) * 1000,
        "answer": harness.response_json(report["first"]),
        "watched_after_import": report["watched_after_import"],
        "watched_after_first": report["watched_after_first"],
        "modules_after_import": report["modules_after_import"],
        "modules_after_first": report["modules_after_first"],
        "files": report["files"],
    }


def floor_run(interpreter: Interpreter, setup: Setup) -> dict[str, Any]:
    report, _, spawned_at = run_child(interpreter, FLOOR, [str(setup.model_path), json.dumps(setup.row)], setup)
    return {
        "interpreter_ms": (report["started_at"] - spawned_at) * 1000,
        "import_ms": report["import_s"] * 1000,
        "load_ms": report["load_s"] * 1000,
        "predict_ms": report["predict_s"] * 1000,
        "total_ms": (report["import_s"] + report["load_s"] + report["predict_s"]) * 1000,
        "prediction": report["prediction"],
        "pandas": report["pandas"],
    }


def anatomy_run(interpreter: Interpreter, setup: Setup) -> dict[str, float]:
    report, _, _ = run_child(interpreter, ANATOMY, [MODEL, json.dumps(setup.row)], setup)
    return {name: seconds * 1000 for name, seconds in report["steps"].items()}


def precompile_stdlib(files: list[str], prefix: Path) -> int:
    """The standard library's .pyc under `prefix`: Lambda's runtime ships them; only the layers do not."""
    saved, sys.pycache_prefix = sys.pycache_prefix, str(prefix)
    try:
        sources = [f for f in files if f.startswith(STDLIB) and "site-packages" not in f and f.endswith(".py")]
        for source in sources:
            py_compile.compile(source, cfile=cache_from_source(source), doraise=True)
    finally:
        sys.pycache_prefix = saved
    return len(sources)


# --- -X importtime ------------------------------------------------------------------------------------------------


def parse_importtime(stderr: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(imports of `import app`, imports during the two predictions), each {name, self_us, cumulative_us}."""
    sections: list[list[dict[str, Any]]] = [[], []]
    section = 0
    for line in stderr.splitlines():
        if line.strip() == SPLIT:
            section = 1
        elif line.startswith("import time:") and "imported package" not in line:
            self_us, cumulative_us, name = line[len("import time:") :].split("|", 2)
            entry = {"name": name.strip(), "self_us": int(self_us), "cumulative_us": int(cumulative_us)}
            sections[section].append(entry)
    return sections[0], sections[1]


def by_package(imports: list[dict[str, Any]]) -> list[list[Any]]:
    """[top-level package, self time in ms, modules], most expensive first."""
    totals: dict[str, list[Any]] = {}
    for entry in imports:
        total = totals.setdefault(entry["name"].split(".")[0], [0.0, 0])
        total[0] += entry["self_us"] / 1000
        total[1] += 1
    return sorted(([name, *total] for name, total in totals.items()), key=lambda row: -row[1])


# --- report ---------------------------------------------------------------------------------------------------------


def spread(values: list[float]) -> list[float]:
    return [statistics.median(values), min(values), max(values)]


SERVICE_STEPS = [
    ("interpreter start (spawn, site)", "interpreter_ms"),
    ("import app", "import_ms"),
    ("  of which garbage collection", "gc_import_ms"),
    ("first prediction (handler)", "first_ms"),
    ("  of which the service (metric)", "first_service_ms"),
    ("  of which garbage collection", "gc_first_ms"),
    ("import app + first prediction", "import_and_first_ms"),
    ("second prediction (warm)", "second_ms"),
]
FLOOR_STEPS = [
    ("floor: interpreter start", "interpreter_ms"),
    ("floor: import sklearn, joblib", "import_ms"),
    ("floor: joblib.load", "load_ms"),
    ("floor: predict 1 row", "predict_ms"),
    ("floor: import + load + predict", "total_ms"),
]


def print_cold(runs: dict[str, dict[str, list[dict[str, Any]]]], repetitions: int, packages: str) -> None:
    modes = list(runs)
    headers = ["step"] + [f"{mode} {what}" for mode in modes for what in ("median", "min", "max")]
    rows = []
    for kind, steps in (("service", SERVICE_STEPS), ("floor", FLOOR_STEPS)):
        for label, key in steps:
            rows.append([label] + [v for mode in modes for v in spread([r[key] for r in runs[mode][kind]])])
    print(f"\ncold start of the predict function, ms, {repetitions} fresh interpreters per column, {packages} packages")
    print("(cached: .pyc for every module; source: no .pyc outside the standard library, as the layers ship)")
    harness.print_table(headers, rows)


def print_anatomy(anatomy: list[dict[str, float]]) -> None:
    rows = [[name, *spread([run[name] for run in anatomy])] for name in anatomy[0]]
    print(f"\nthe first prediction step by step, after `import app` (cached .pyc), ms, {len(anatomy)} runs")
    harness.print_table(["step", "median", "min", "max"], rows)


def print_imports(at_import: list[dict[str, Any]], at_first: list[dict[str, Any]], top: int) -> None:
    def ranked(entries: list[dict[str, Any]], count: int) -> list[list[Any]]:
        best = sorted(entries, key=lambda e: -e["cumulative_us"])[:count]
        return [[e["name"], e["cumulative_us"] / 1000, e["self_us"] / 1000] for e in best]

    print(f"\n`import app`: {len(at_import)} modules; top {top} by cumulative import time (-X importtime, ms)")
    harness.print_table(["module", "cumulative", "self"], ranked(at_import, top))
    print("\n`import app`: self time by top-level package (ms)")
    harness.print_table(["package", "self", "modules"], by_package(at_import)[:12])
    print(f"\nfirst prediction: {len(at_first)} more modules imported; the most expensive (cumulative, ms)")
    harness.print_table(["module", "cumulative", "self"], ranked(at_first, 10))


def print_checks(sample: dict[str, Any], floor: dict[str, Any]) -> None:
    at_import, at_first = sample["watched_after_import"], sample["watched_after_first"]
    print(
        f"\npandas imported by `import app`: {at_import['pandas']}; by the first prediction: {at_first['pandas']}; "
        f"by the floor: {floor['pandas']}"
    )
    imported = [name for name, present in at_import.items() if present] or "none"
    first = [name for name, present in at_first.items() if present] or "none"
    print(f"of {', '.join(WATCHED)}: after import {imported}; after the first prediction {first}")
    print(
        f"modules loaded: {sample['modules_after_import']} after import, "
        f"{sample['modules_after_first']} after the first prediction"
    )
    answer = [entry["prediction"] for entry in sample["answer"]]
    print(f"answer {answer} equals the floor's {floor['prediction']}: {answer == floor['prediction']}")


def measure(setup: Setup, folder: Path, modes: list[str], args: argparse.Namespace) -> dict[str, Any]:
    paths = package_paths(args.packages, setup.function_dir)
    no_site = args.packages == "built"
    cached = Interpreter(paths, folder / "pyc-cached", read_only=False, no_site=no_site)
    source = Interpreter(paths, folder / "pyc-stdlib-only", read_only=True, no_site=no_site)
    # Untimed runs: they fill the cached .pyc folder and say which standard library files get loaded.
    sample = service_run(cached, setup)
    floor_sample = floor_run(cached, setup)
    compiled = precompile_stdlib(sample["files"], source.bytecode)
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for mode in modes:
        interpreter = source if mode == "source" else cached
        print(f"{mode}: {args.repetitions} x (service, floor) ...", flush=True)
        runs[mode] = {"service": [], "floor": []}
        for _ in range(args.repetitions):
            runs[mode]["service"].append(service_run(interpreter, setup))
            runs[mode]["floor"].append(floor_run(interpreter, setup))
    print("anatomy and -X importtime ...", flush=True)
    anatomy = [anatomy_run(cached, setup) for _ in range(args.repetitions)]
    _, stderr, _ = run_child(cached, SERVICE, [str(setup.event_path), ",".join(WATCHED)], setup, importtime=True)
    at_import, at_first = parse_importtime(stderr)

    print_cold(runs, args.repetitions, args.packages)
    print_anatomy(anatomy)
    print_imports(at_import, at_first, args.top)
    print_checks(sample, floor_sample)
    for mode_runs in runs.values():
        for run in mode_runs["service"]:
            del run["files"], run["answer"]
    return {
        "benchmark": "predict_cold",
        "machine": harness.machine(),
        "sys_path_first": paths,
        "stdlib_files_precompiled": compiled,
        "runs": runs,
        "anatomy": anatomy,
        "importtime": {"import_app": at_import, "first_prediction": at_first},
        "watched_after_import": sample["watched_after_import"],
        "watched_after_first": sample["watched_after_first"],
    }


def main() -> None:
    args = parse_args()
    started = time.monotonic()
    modes = ["cached", "source"] if args.bytecode == "both" else [args.bytecode]
    with tempfile.TemporaryDirectory(prefix="lrnstak-bench-cold-") as folder:
        print("training the model against moto's server ...", flush=True)
        setup = Setup(Path(folder), args.algorithm)
        try:
            document = measure(setup, Path(folder), modes, args)
        finally:
            setup.stop()
    document["arguments"] = vars(args)
    path = harness.write_results("predict_cold" if args.packages == "venv" else "predict_cold_built", document)
    print(f"\n{time.monotonic() - started:.0f}s; written to {path.relative_to(harness.ROOT)}")


if __name__ == "__main__":
    main()
