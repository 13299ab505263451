"""HTTP Basic authentication of the dashboard (user ``admin``), as an aiohttp middleware.

Compared in constant time (``hmac.compare_digest`` on the whole ``user:password``, so neither the
user nor the password leaks through timing), and a failed attempt is answered only after a delay
(an ``asyncio.sleep``: other requests go on meanwhile), which makes guessing slow.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging

from aiohttp import web

log = logging.getLogger(__name__)

USER = "admin"
REALM = "ocpp-agent"
FAILURE_DELAY_S = 1.0


def basic_auth(password: str, *, failure_delay_s: float = FAILURE_DELAY_S):
    """A middleware that lets a request through only with ``admin:<password>``."""
    expected = f"{USER}:{password}".encode()

    @web.middleware
    async def middleware(request: web.Request, handler):
        supplied = _credentials(request.headers.get("Authorization", ""))
        if supplied is not None and hmac.compare_digest(supplied, expected):
            return await handler(request)
        if supplied is not None:  # a wrong attempt (not a browser's first, credential-less request)
            log.warning("dashboard: wrong credentials from %s", request.remote)
            await asyncio.sleep(failure_delay_s)
        raise web.HTTPUnauthorized(
            text='{"error": "authentication required (HTTP Basic, user admin)"}', content_type="application/json",
            headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'})

    return middleware


def _credentials(header: str) -> bytes | None:
    """The decoded ``user:password`` of a Basic Authorization header, or None if there is none."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or not token.strip():
        return None
    try:
        return base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return b""  # malformed: a failed attempt
