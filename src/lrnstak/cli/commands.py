"""What each `lrnstak` subcommand does, through lrnstak.client."""

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lrnstak.cli.output import cell_text, error, print_json, table
from lrnstak.cli.parser import Parser, build_parser
from lrnstak.cli.progress import LazyProgress, Progress
from lrnstak.client import Client, Job, LrnstakError, TrainResult
from lrnstak.client.data import csv_rows

OK, REFUSED = 0, 1  # and 2, argparse's own, for usage errors
Command = Callable[[Client, argparse.Namespace], None]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.json = getattr(args, "json", False)
    if args.command == "serve":
        return serve(parser, args)
    try:
        with Client(getattr(args, "url", None), getattr(args, "api_key", None)) as client:
            COMMANDS[args.command](client, args)
    except LrnstakError as refused:
        error(describe(refused))
        return REFUSED
    except UsageError as usage:
        parser.error(str(usage))
    except BrokenPipeError:
        # The reader went away (`lrnstak predict ... | head`): nothing more to say, and nowhere to say it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return REFUSED
    except OSError as failure:  # writing the output file, say
        error(f"{failure.filename}: {failure.strerror}" if failure.filename else str(failure))
        return REFUSED
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        return 130
    return OK


class UsageError(Exception):
    """Arguments argparse accepted but that do not go together."""


def describe(refused: LrnstakError) -> str:
    if refused.code == "connection_error":
        return f"{refused.message}: is the API running? (`lrnstak serve` runs one locally; --url picks another)"
    return str(refused)


def readable(path: str) -> int:
    """The size of a file to send; a missing one is reported before anything is sent."""
    try:
        with open(path, "rb"):
            return os.path.getsize(path)
    except OSError as failure:
        raise LrnstakError(f"cannot read {path}: {failure.strerror or failure}", code="invalid_input") from None


# train ---------------------------------------------------------------------------------------------------


def train(client: Client, args: argparse.Namespace) -> None:
    readable(args.csv)
    algorithm = args.algorithm[0] if args.algorithm and len(args.algorithm) == 1 else args.algorithm
    options: dict[str, Any] = {
        "target": args.target,
        "features": args.features,
        "algorithm": algorithm,
        "version": args.version,
    }
    if args.run_async:
        answer = client.train(args.name, Path(args.csv), run_async=True, wait=False, **options)
        if not isinstance(answer, Job):  # the API trained it at once after all
            report_trained(answer, args.json)
        elif args.json:
            print_json(answer)
        else:
            print(f"job {answer.job_id} {answer.status}: follow it at GET /train/jobs/{answer.job_id}")
        return
    with Progress(f"training {args.name}", "training") as progress:
        result = client.train(args.name, Path(args.csv), on_progress=progress.on_job, **options)
    report_trained(result, args.json)


def report_trained(result: TrainResult, as_json: bool) -> None:
    if as_json:
        print_json(result)
        return
    print(result.message)
    scores = result.training_results.get("scores") or []
    rows = [
        [score.get("iteration"), score.get("algorithm"), *(score.get(metric) for metric in metric_names(scores))]
        for score in scores
    ]
    if rows:
        table(["ITERATION", "ALGORITHM", *(name.upper() for name in metric_names(scores))], rows)


def metric_names(scores: list[dict[str, Any]]) -> list[str]:
    names: list[str] = []
    for score in scores:
        names += [key for key in score if key not in ("iteration", "algorithm") and key not in names]
    return names


# predict -------------------------------------------------------------------------------------------------


def predict(client: Client, args: argparse.Namespace) -> None:
    readable(args.csv)
    # Shown only if the file turns out too large for one request and goes through a batch job.
    with LazyProgress(f"predicting {args.name}") as progress:
        answer = client.predict_csv(args.name, Path(args.csv), args.version, on_progress=progress.on_job)
    if args.output:
        Path(args.output).write_bytes(answer)
        if args.json:
            print_json({"output": args.output, "rows": max(0, answer.count(b"\n") - 1)})
        return
    if args.json:
        print_json(csv_rows(answer.decode("utf-8-sig")))
        return
    sys.stdout.buffer.write(answer)
    sys.stdout.flush()


# registry ------------------------------------------------------------------------------------------------


def models(client: Client, args: argparse.Namespace) -> None:
    found = client.models()
    if args.json:
        print_json(found)
        return
    if not found:
        print("no models yet: `lrnstak train NAME --csv FILE --target COL` makes one")
        return
    table(
        ["MODEL", "LATEST", "VERSIONS", "UPDATED"],
        [[model.model, model.latest, len(model.versions), model.updated_at] for model in found],
    )


def versions(client: Client, args: argparse.Namespace) -> None:
    found = client.versions(args.name)
    if args.json:
        print_json(found)
        return
    table(
        ["VERSION", "ALGORITHM", "CREATED", "SIZE", "METRICS"],
        [[entry.version, entry.algorithm, entry.created_at, entry.size, entry.metrics] for entry in found],
    )


def info(client: Client, args: argparse.Namespace) -> None:
    found = client.info(args.name, args.version)
    if args.json:
        print_json(found)
        return
    schema = found.feature_schema or {}
    features = [feature.get("name") for feature in schema.get("features", [])] or found.parameters.get("feature_labels")
    rows: list[list[Any]] = [
        ["model", found.model],
        ["version", found.version],
        ["algorithm", found.algorithm],
        ["task", schema.get("task") or found.parameters.get("task")],
        ["target", found.parameters.get("target_label")],
        ["features", features],
        ["created", found.created_at],
        ["updated", found.updated_at],
        ["size", f"{found.size} bytes"],
        ["sha256", found.sha256],
        ["sklearn", found.sklearn_version],
        *[[f"metric {name}", value] for name, value in sorted(found.metrics.items())],
        *[[f"metadata {name}", value] for name, value in sorted(found.metadata.items())],
    ]
    table(["FIELD", "VALUE"], [[name, cell_text(value)] for name, value in rows])


# cache ---------------------------------------------------------------------------------------------------


def cache(client: Client, args: argparse.Namespace) -> None:
    if args.action != "put" and (args.value is not None or args.ttl is not None):
        raise UsageError(f"cache {args.action} takes only KEY")
    if args.action == "get":
        value = client.cache.get(args.key)
        if args.json or not isinstance(value, str):
            print(json.dumps(value))
        else:
            print(value)
    elif args.action == "put":
        if args.value is None:
            raise UsageError("cache put needs a VALUE")
        client.cache.put(args.key, json_or_text(args.value), args.ttl)
        if args.json:
            print_json({"key": args.key, "stored": True, "ttl": args.ttl})
        else:
            print("OK")
    else:
        existed = client.cache.delete(args.key)
        if args.json:
            print_json({"key": args.key, "deleted": existed})
        else:
            print("deleted" if existed else "no such key")


def json_or_text(value: str) -> Any:
    """`42`, `true`, `{"a": 1}` are JSON; `hello` is the text hello."""
    try:
        return json.loads(value)
    except ValueError:
        return value


# serve ---------------------------------------------------------------------------------------------------


def serve(parser: Parser, args: argparse.Namespace) -> int:
    if args.port is not None:
        if not 1 <= args.port <= 65535:
            parser.error(f"--port must be from 1 to 65535, not {args.port}")
        os.environ["PORT"] = str(args.port)
    try:
        from lrnstak.local.server import main as run_stack
    except ImportError as missing:
        error(f"`lrnstak serve` needs the local stack's packages ({missing.name}): pip install 'lrnstak[ml,local]'")
        return REFUSED
    try:
        run_stack()
    except SystemExit as stopped:
        if isinstance(stopped.code, str):  # the stack's own one-line reason (a port in use, say)
            error(stopped.code.removeprefix("error: "))
            return REFUSED
        return stopped.code or OK
    except KeyboardInterrupt:
        return OK
    return OK


COMMANDS: dict[str, Command] = {
    "train": train,
    "predict": predict,
    "models": models,
    "versions": versions,
    "info": info,
    "cache": cache,
}
