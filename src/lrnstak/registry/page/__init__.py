"""The registry's one web page (GET /): index.html with app.css and app.js inlined, read once.

Inlined rather than served from routes of their own: the page works the same at `/prod` and `/prod/` (the
API's root, with or without the slash) with nothing to resolve relative to it, and the Content-Security-Policy
allows exactly these two blocks by their SHA-256, no other script or style, and connections to this origin only.
"""

import base64
import hashlib
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files

STYLE_SLOT = "/*STYLE*/"
SCRIPT_SLOT = "/*SCRIPT*/"


@dataclass(frozen=True)
class Page:
    html: str
    headers: dict[str, str]


def _sha256_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@lru_cache(maxsize=1)
def registry_page() -> Page:
    folder = files(__name__)
    html = folder.joinpath("index.html").read_text(encoding="utf-8")
    style = folder.joinpath("app.css").read_text(encoding="utf-8")
    script = folder.joinpath("app.js").read_text(encoding="utf-8")
    for name, text, closing in (("app.css", style, "</style"), ("app.js", script, "</script")):
        if closing in text.lower():
            raise ValueError(f"{name} contains {closing}>, which would end its inline block early")
    if html.count(STYLE_SLOT) != 1 or html.count(SCRIPT_SLOT) != 1:
        raise ValueError("index.html must have one style slot and one script slot")
    policy = "; ".join(
        (
            "default-src 'none'",
            f"script-src {_sha256_source(script)}",
            f"style-src {_sha256_source(style)}",
            "connect-src 'self'",
            "img-src data:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )
    headers = {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }
    return Page(html.replace(STYLE_SLOT, style).replace(SCRIPT_SLOT, script), headers)
