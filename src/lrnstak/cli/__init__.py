"""The `lrnstak` command line: the client's everyday work as commands (see docs/client.md).

Exit codes: 0 done, 1 the API said no or could not be reached, 2 a usage error. Errors are one line on
stderr, never a traceback.
"""

from lrnstak.cli.commands import main

__all__ = ["main"]
