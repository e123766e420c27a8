"""The command line's grammar (argparse): subcommands, and the global options every one of them takes."""

import argparse
from typing import NoReturn


class Parser(argparse.ArgumentParser):
    """Usage errors in one line (`lrnstak: error: ...`) and exit code 2, like argparse but without the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"lrnstak: error: {message} (see '{self.prog} --help')\n")


def global_options() -> Parser:
    # SUPPRESS: an option given before the subcommand is not reset by the subcommand's own copy of it.
    options = Parser(add_help=False)
    options.add_argument(
        "--url", default=argparse.SUPPRESS, help="the API (default: $LRNSTAK_API_URL, else http://127.0.0.1:5000)"
    )
    options.add_argument("--api-key", default=argparse.SUPPRESS, help="sent as x-api-key (default: $LRNSTAK_API_KEY)")
    options.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output (JSON) on stdout"
    )
    return options


def build_parser() -> Parser:
    common = global_options()
    parser = Parser(
        prog="lrnstak",
        parents=[common],
        description="Train scikit-learn models and serve predictions with lrnstak.",
        epilog="Exit codes: 0 done, 1 the API said no (or could not be reached), 2 usage error.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    train = commands.add_parser("train", parents=[common], help="train and register a model from a CSV file")
    train.add_argument("name", metavar="NAME", help="the model's name")
    train.add_argument("--csv", required=True, metavar="FILE", help="training rows, with a header row")
    train.add_argument("--target", required=True, metavar="COL", help="the column to predict")
    train.add_argument("--features", nargs="+", metavar="COL", help="the columns to learn from (default: all others)")
    train.add_argument(
        "--algorithm", nargs="+", metavar="ALG", help="one or more algorithms (default: four candidates, best kept)"
    )
    train.add_argument("--version", help="the version to write (default: the next v<N>)")
    train.add_argument("--async", dest="run_async", action="store_true", help="queue a job, print its id, return")

    predict = commands.add_parser("predict", parents=[common], help="predict every row of a CSV file")
    predict.add_argument("name", metavar="NAME")
    predict.add_argument("--csv", required=True, metavar="FILE", help="rows with a header row")
    predict.add_argument("--version", help="a version (default: latest)")
    predict.add_argument("-o", "--output", metavar="FILE", help="write the CSV there (default: stdout)")

    commands.add_parser("models", parents=[common], help="list the models")
    versions = commands.add_parser("versions", parents=[common], help="list a model's versions")
    versions.add_argument("name", metavar="NAME")
    info = commands.add_parser("info", parents=[common], help="describe a version")
    info.add_argument("name", metavar="NAME")
    info.add_argument("version", metavar="VERSION", nargs="?", default="latest", help="default: latest")

    cache = commands.add_parser("cache", parents=[common], help="read and write the key/value cache")
    cache.add_argument("action", choices=["get", "put", "delete"])
    cache.add_argument("key", metavar="KEY")
    cache.add_argument("value", metavar="VALUE", nargs="?", help="for put: JSON, or else taken as text")
    cache.add_argument("--ttl", type=int, metavar="SECONDS", help="for put: expire after this many seconds")

    serve = commands.add_parser("serve", parents=[common], help="run the whole stack locally (what `make run` runs)")
    serve.add_argument("--port", type=int, help="default: $PORT, else 5000")
    return parser
