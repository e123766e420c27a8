"""`make screenshot`: the registry page with a few trained models, as docs/page.png for the README.

Starts the local stack (`python -m lrnstak.local`) on a free port with a throwaway state folder, trains
models on scikit-learn's bundled datasets through the API, opens the page in Debian's headless Chromium
(/usr/bin/chromium, driven by Playwright), picks a model and a version, and saves the picture.
"""

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import expect, sync_playwright
from sklearn.datasets import load_diabetes, load_iris

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
READY = re.compile(r"lrnstak is ready on (http://\S+)")
MODELS = (
    ("diabetes", "progression", ("linear_regression", "random_forest", "gradient_boosting", "ridge")),
    ("iris", "species", ("logistic_regression", "random_forest")),
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rows_of(dataset: str) -> list[dict[str, Any]]:
    if dataset == "iris":
        data = load_iris()
        names = [name.replace(" (cm)", "").replace(" ", "_") for name in data.feature_names]
        return [
            {**dict(zip(names, map(float, x), strict=True)), "species": str(data.target_names[t])}
            for x, t in zip(data.data, data.target, strict=True)
        ]
    data = load_diabetes()
    return [
        {**dict(zip(data.feature_names, map(float, x), strict=True)), "progression": float(y)}
        for x, y in zip(data.data, data.target, strict=True)
    ]


def start_stack(state: Path) -> tuple[subprocess.Popen[str], str]:
    environment = {
        **os.environ,
        "PORT": str(free_port()),
        "LRNSTAK_DATA_DIR": str(state),
        "LRNSTAK_RESET": "1",
        "LRNSTAK_API_KEY": "",
        "PYTHONUNBUFFERED": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "lrnstak.local"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        match = READY.search(line)
        if match:
            # Keep draining the pipe, or a chatty stack would block on a full one.
            threading.Thread(target=lambda: [None for _ in process.stdout or ()], daemon=True).start()
            return process, match.group(1)
    process.wait()
    raise SystemExit("the local stack did not start:\n" + "".join(seen[-40:]))


def train_models(url: str) -> None:
    with httpx.Client(base_url=url, timeout=300) as client:
        for model, target, algorithms in MODELS:
            rows = rows_of(model)
            for algorithm in algorithms:
                body = {"training_data": rows, "parameters": {"target_label": target, "algorithm": algorithm}}
                response = client.post(f"/train/{model}", json=body)
                response.raise_for_status()
                print(f"trained {model} {response.json()['version']} ({algorithm})")


def take_screenshot(url: str, output: Path) -> None:
    if not CHROMIUM.is_file():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install -y --no-install-recommends chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
        page.goto(url + "/")
        expect(page.locator("#models tbody tr")).to_have_count(len(MODELS))
        page.click("#models button:text-is('diabetes')")
        expect(page.locator("#metric-chart circle.point")).to_have_count(len(MODELS[0][2]))
        page.select_option("#metric-select", "r2")
        page.click("#versions button:text-is('v1')")
        expect(page.locator("#holdout-chart circle.pair").first).to_be_visible()
        output.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(output), full_page=True)
        browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "page.png")
    arguments = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lrnstak-screenshot-") as state:
        process, url = start_stack(Path(state))
        try:
            train_models(url)
            take_screenshot(url, arguments.output)
        finally:
            process.terminate()
            process.wait(timeout=30)
    print(f"wrote {arguments.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
