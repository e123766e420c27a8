"""The rules for model names, versions and other identifiers that appear in paths and S3 keys."""

import re

from lrnstak.errors import InvalidInput

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
LATEST = "latest"
# `best` is a route under /models/{name}, so a version with that name could never be read back.
RESERVED_VERSIONS = frozenset({LATEST, "best"})
AUTO_VERSION = re.compile(r"v(\d{1,9})")


def check_name(value: str, what: str) -> str:
    if not NAME_PATTERN.fullmatch(value):
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise InvalidInput(
            f"Invalid {what} {shown!r}: use 1 to 128 characters from A-Z a-z 0-9 . _ - "
            "starting with a letter or digit.",
            details={"field": what, "value": shown, "pattern": NAME_PATTERN.pattern},
        )
    return value


def check_model_name(value: str) -> str:
    return check_name(value, "model name")


def check_version_to_read(value: str) -> str:
    """A version in a read path: a version name, or `latest`."""
    return check_name(value, "version")


def check_version_to_write(value: str) -> str:
    check_name(value, "version")
    if value in RESERVED_VERSIONS:
        raise InvalidInput(
            f"Version {value!r} is reserved; choose another name.",
            details={"field": "version", "value": value},
        )
    return value


def next_free_version(existing: set[str]) -> str:
    """The old stack's automatic naming: v1, v2, ... one past the highest v<N> in use."""
    highest = max((int(m.group(1)) for v in existing if (m := AUTO_VERSION.fullmatch(v))), default=0)
    return f"v{highest + 1}"
