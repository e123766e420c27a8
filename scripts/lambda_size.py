"""`make size`: each built function's unzipped size, its own folder plus its layers, against Lambda's limit.

Lambda refuses a function whose code and layers add up to more than 250 MB unzipped (262,144,000 bytes: its
MB are MiB). This fails earlier, above 230 MB by default, so a dependency bump is caught here and not by a
deploy. Reads the built template (.aws-sam/build/template.yaml) for each function's CodeUri and layers.
"""

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lrnstak.local.template import Template

MB = 1024 * 1024
LAMBDA_LIMIT_MB = 250.0
FAIL_ABOVE_MB = 230.0
LAYER = "AWS::Serverless::LayerVersion"


@dataclass(frozen=True)
class FunctionSize:
    function: str
    code: int
    layers: dict[str, int]

    @property
    def total(self) -> int:
        return self.code + sum(self.layers.values())


def folder_size(folder: Path) -> int:
    """Bytes of every file below `folder`, as the deployment zip holds them (symlinks followed)."""
    if not folder.is_dir():
        raise SystemExit(f"error: {folder} is missing: run `make build` first")
    return sum(
        (Path(parent) / name).stat().st_size for parent, _, files in os.walk(folder, followlinks=True) for name in files
    )


def layer_ids(template: Template, function: str) -> list[str]:
    """Globals' layers then the function's own (SAM appends them), each once."""
    shared = template.body.get("Globals", {}).get("Function", {}).get("Layers", [])
    own = template.functions()[function].get("Properties", {}).get("Layers", [])
    logical_ids: list[str] = []
    for layer in [*shared, *own]:
        if not (isinstance(layer, dict) and template.resources.get(str(layer.get("Ref")), {}).get("Type") == LAYER):
            raise SystemExit(f"error: {function} uses the layer {layer!r}, which is not built from this template")
        if layer["Ref"] not in logical_ids:
            logical_ids.append(str(layer["Ref"]))
    return logical_ids


def function_sizes(build_dir: Path) -> list[FunctionSize]:
    if not (build_dir / "template.yaml").is_file():
        raise SystemExit(f"error: no {build_dir}/template.yaml: run `make build` first")
    template = Template.load(build_dir)
    layer_sizes: dict[str, int] = {}
    sizes = []
    for function, resource in sorted(template.functions().items()):
        layers = {}
        for layer in layer_ids(template, function):
            if layer not in layer_sizes:
                layer_sizes[layer] = folder_size(build_dir / str(template.resources[layer]["Properties"]["ContentUri"]))
            layers[layer] = layer_sizes[layer]
        code = folder_size(build_dir / str(resource["Properties"]["CodeUri"]))
        sizes.append(FunctionSize(function, code, layers))
    return sizes


def megabytes(size: int) -> str:
    return f"{size / MB:.1f} MB"


def report(sizes: Sequence[FunctionSize], limit: int, fail_above: int) -> list[str]:
    lines = [f"unzipped, code + layers (Lambda's limit: {megabytes(limit)}; fails above {megabytes(fail_above)})"]
    for size in sizes:
        parts = " + ".join([f"code {megabytes(size.code)}", *(f"{n} {megabytes(b)}" for n, b in size.layers.items())])
        verdict = "TOO LARGE" if size.total > fail_above else "ok"
        lines.append(f"{size.function:<24} {megabytes(size.total):>9} {size.total / limit:>4.0%}  {verdict:<9} {parts}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--build-dir", type=Path, default=Path(".aws-sam/build"))
    parser.add_argument("--limit-mb", type=float, default=LAMBDA_LIMIT_MB, help="Lambda's limit, for the report")
    parser.add_argument("--fail-above-mb", type=float, default=FAIL_ABOVE_MB, help="fail when a function is larger")
    arguments = parser.parse_args(argv)
    limit, fail_above = int(arguments.limit_mb * MB), int(arguments.fail_above_mb * MB)
    sizes = function_sizes(arguments.build_dir)
    print("\n".join(report(sizes, limit, fail_above)))
    too_large = [size.function for size in sizes if size.total > fail_above]
    if too_large:
        print(
            f"error: {', '.join(too_large)} above {megabytes(fail_above)} unzipped (Lambda refuses more than "
            f"{megabytes(limit)}): drop a dependency from its layers, or strip more in the layer's Makefile",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
