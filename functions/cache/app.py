"""The cache function: key/value store with TTL and list operations (issue: cache)."""

from mangum import Mangum

from lrnstak.http import create_app, pending_router, wrap_handler

router = pending_router(
    "cache",
    [
        ("PUT", "/cache/ttl/{key}", "set_ttl"),
        ("PUT", "/cache/push/{key}", "push_value"),
        ("GET", "/cache/peek/{key}", "peek_value"),
        ("GET", "/cache/pop/{key}", "pop_value"),
        ("PUT", "/cache/{key}", "put_value"),
        ("POST", "/cache/{key}", "post_value"),
        ("GET", "/cache/{key}", "get_value"),
        ("DELETE", "/cache/{key}", "delete_value"),
    ],
)

app = create_app("cache", [router])
handler = wrap_handler(Mangum(app, lifespan="off"))
