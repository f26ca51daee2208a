"""The console's login: the API token in an HttpOnly, SameSite=Strict cookie, and a CSRF check.

The cookie holds the same token the API takes as a bearer, so the console can do exactly what
the API lets that token do, and nothing more. Pages never carry the token; they carry a CSRF
value derived from it (an HMAC keyed by the token), which every form and htmx request sends
back and which a page of another origin cannot know.
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request

from takeover.control.services import Services
from takeover.domain.errors import Forbidden
from takeover.domain.models import Principal, Role

COOKIE = "takeover_console"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"


def csrf_value(token: str) -> str:
    return hmac.new(token.encode(), b"takeover-console-csrf", hashlib.sha256).hexdigest()


def console_principal(services: Services, token: str | None) -> Principal:
    """The cookie's principal; node tokens run agents, not the console."""
    principal = services.authenticate(token)
    if principal.role is Role.NODE:
        raise Forbidden("node tokens cannot use the console; log in with an admin or user token")
    return principal


def check_origin(request: Request) -> None:
    """A browser names the page that sent a request; one from another site is refused."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return
    host = request.headers.get("x-forwarded-host") or request.headers.get("host", "")
    if origin.split("://", 1)[-1] != host:
        raise Forbidden(f"request from another origin ({origin}) refused")


def check_csrf(token: str, sent: str | None) -> None:
    if sent is None or not hmac.compare_digest(sent, csrf_value(token)):
        raise Forbidden("the form's CSRF check failed; reload the page and try again")


def is_secure(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


__all__ = [
    "COOKIE",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "check_csrf",
    "check_origin",
    "console_principal",
    "csrf_value",
    "is_secure",
]
