"""The client and the command line install on laptops: importing them must not need the server's packages."""

import subprocess
import sys

SERVER_PACKAGES = ("fastapi", "boto3", "botocore", "sklearn", "pandas", "numpy", "pydantic", "mangum", "moto")


def test_client_and_cli_import_without_the_server_packages() -> None:
    code = (
        "import sys, lrnstak.client, lrnstak.cli, lrnstak.cli.commands\n"
        f"print(','.join(sorted(name for name in {SERVER_PACKAGES!r} if name in sys.modules)))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == ""
