"""JSON values that must come back exactly as they were sent: falsy ones, big integers, non-ASCII text, nesting."""

from typing import Any

JSON_VALUES: list[Any] = [
    0,
    False,
    "",
    [],
    {},
    None,
    True,
    -7,
    10**30,
    1.5,
    1.0,
    "é ☃ 𝄞 \u0000",
    [1, "a", None, False, 0, "", [], {}],
    {"a": {"b": [None, {"c": ""}]}},
]
