"""The ``ocpp-agent web`` server: an aiohttp application of GET-only routes, and how it is run.

Pages and API read the daemon's files read-only (the message log, the state store) in a worker
thread, and its live state from the shared status watch (agent.web.live). Nothing here can change
the station: there is no route but GET (and the HEAD aiohttp adds to each).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sqlite3
import ssl
import sys

from aiohttp import web

from agent.config.web import is_loopback, parse_listen
from agent.status.client import AgentNotRunning, read_snapshot
from agent.web import log_page, pages
from agent.web.auth import FAILURE_DELAY_S, basic_auth
from agent.web.live import StatusHub
from agent.web.logdb import MAX_LIMIT, PAGE_SIZE, STREAM_CHUNK, LogReader, parse_filter, parse_int
from agent.web.station_db import masked_config, read_sessions, read_settings

log = logging.getLogger(__name__)

HUB = web.AppKey("hub", StatusHub)
CONFIG = web.AppKey("config", object)
LOG = web.AppKey("log", LogReader)
KEEPALIVE_S = 15.0  # an SSE comment this often finds browsers that went away
API_LOG_PARAMS = {"action", "direction", "q", "since", "until", "limit", "before", "after"}
STATIC = __file__.rsplit("/", 1)[0] + "/static"
# Our own files only: no inline script, no other origin, no framing by another site.
CSP = "default-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'; base-uri 'none'"


def create_app(config, *, failure_delay_s: float = FAILURE_DELAY_S, hub: StatusHub | None = None) -> web.Application:
    """The dashboard application for the agent configured by ``config``; HTTP Basic when it has a password."""
    middlewares = [_bad_request]
    if config.web.password:
        middlewares.insert(0, basic_auth(config.web.password, failure_delay_s=failure_delay_s))
    else:
        middlewares.insert(0, _loopback_names_only)
    app = web.Application(middlewares=middlewares)
    app[CONFIG] = config
    app[HUB] = hub or StatusHub(config.station.data_dir)
    app[LOG] = LogReader(config.station.data_dir)
    app.on_startup.append(_start_hub)
    app.on_shutdown.append(_stop_hub)
    app.on_response_prepare.append(_security_headers)
    for path, handler in ROUTES:
        app.router.add_get(path, handler)
    app.router.add_static("/static", STATIC)
    return app


async def _start_hub(app: web.Application) -> None:
    app[HUB].start()


async def _stop_hub(app: web.Application) -> None:
    await app[HUB].stop()


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")


@web.middleware
async def _loopback_names_only(request: web.Request, handler):
    """Without a password, answer only requests addressed to a loopback name (Host header).

    The dashboard then trusts whoever can reach 127.0.0.1; a web page elsewhere could still reach it
    through the visitor's browser by pointing its own host name at 127.0.0.1 (DNS rebinding), and that
    request carries the foreign name.
    """
    if is_loopback(request.url.host or ""):
        return await handler(request)
    return web.json_response({"error": "only loopback host names are served without [web] password"}, status=403)


@web.middleware
async def _bad_request(request: web.Request, handler):
    """A parameter that does not parse is a 400 with its message (JSON under /api), never a traceback;
    data the process cannot read is a 503 that says so."""
    try:
        return await handler(request)
    except ValueError as exc:
        status, message = 400, str(exc)
    except sqlite3.Error as exc:  # the daemon's files unreadable (permissions, a broken disk)
        status, message = 503, f"cannot read the agent's data: {exc}"
    if request.path.startswith("/api/"):
        return web.json_response({"error": message}, status=status)
    return web.Response(text=pages.error_page(status, message), content_type="text/html", status=status)


def _html(text: str) -> web.Response:
    return web.Response(text=text, content_type="text/html", headers={"Cache-Control": "no-store"})


# ------------------------------------------------------------------ pages


async def status_page(request: web.Request) -> web.Response:
    """``/``: connection and EVSE cards, kept live by ``/events``."""
    return _html(pages.status_page(request.app[HUB]))


async def events(request: web.Request) -> web.StreamResponse:
    """``/events``: server-sent events, one ``status`` event (the re-rendered live section) per change."""
    hub = request.app[HUB]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    queue = hub.subscribe()
    try:
        await response.write(b"retry: 1000\n\n")
        while True:
            try:
                state = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
            except asyncio.TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            if state is None:  # shutting down
                break
            data = json.dumps({"running": state["running"], "html": pages.live_section(hub)})
            await response.write(f"event: status\ndata: {data}\n\n".encode())
    except (ConnectionResetError, ConnectionError):
        pass  # the browser left
    finally:
        hub.unsubscribe(queue)
    return response


async def log_view(request: web.Request) -> web.Response:
    """``/log``: newest first, 100 a page, ``before`` = the cursor of an older page."""
    reader, params = request.app[LOG], request.query
    flt = parse_filter(params)
    before = parse_int(params, "before", default=None, low=1)
    rows = await asyncio.to_thread(reader.page, flt, before=before, limit=PAGE_SIZE)
    actions = await asyncio.to_thread(reader.actions)
    return _html(log_page.log_page(rows, actions=actions, params=params, before=before))


async def log_rows(request: web.Request) -> web.Response:
    """``/log/rows``: the rows alone (``after`` = only frames newer than that id), for the page's script."""
    reader, params = request.app[LOG], request.query
    flt = parse_filter(params)
    before = parse_int(params, "before", default=None, low=1)
    after = parse_int(params, "after", default=None, low=0)
    rows = await asyncio.to_thread(reader.page, flt, before=before, after=after, limit=PAGE_SIZE)
    headers = {"Cache-Control": "no-store"}
    older = log_page.older_href(rows, log_page.filter_args(params)) if after is None else None
    if older:
        headers["X-Older"] = older  # where the page's "Older" link now points
    return web.Response(text=log_page.log_rows(rows), content_type="text/html", headers=headers)


async def sessions_view(request: web.Request) -> web.Response:
    """``/sessions``: the transaction journal."""
    sessions = await asyncio.to_thread(read_sessions, request.app[CONFIG].station.data_dir)
    return _html(pages.sessions_page(sessions))


async def config_view(request: web.Request) -> web.Response:
    """``/config``: the configuration and the OCPP settings, secrets masked."""
    config = request.app[CONFIG]
    settings = await asyncio.to_thread(read_settings, config.station.data_dir, config)
    return _html(pages.config_page(source=config.source, config_pairs=masked_config(config), settings=settings,
                                   ocpp_version=config.csms.ocpp_version))


# ------------------------------------------------------------------ JSON API


async def api_status(request: web.Request) -> web.Response:
    """``/api/status``: the daemon's SNAPSHOT; 503 while no agent runs."""
    hub = request.app[HUB]
    snapshot = hub.latest
    if snapshot is None:
        try:
            snapshot = await asyncio.to_thread(read_snapshot, request.app[CONFIG].station.data_dir, timeout=1.0)
        except AgentNotRunning as exc:
            return web.json_response({"error": f"the agent is not running ({exc})"}, status=503)
    return web.json_response(snapshot)


def _check_params(params, allowed: set[str]) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValueError(f"unknown parameter {unknown[0]!r}; expected some of {', '.join(sorted(allowed))}")


async def api_log(request: web.Request) -> web.Response:
    """``/api/log``: ``{"frames": [...]}``, each a line of ``ocpp-agent log --json`` plus its ``id``."""
    params = request.query
    _check_params(params, API_LOG_PARAMS)
    flt = parse_filter(params)
    limit = parse_int(params, "limit", default=PAGE_SIZE, low=0, high=MAX_LIMIT)
    before = parse_int(params, "before", default=None, low=1)
    after = parse_int(params, "after", default=None, low=0)
    rows = await asyncio.to_thread(request.app[LOG].page, flt, before=before, after=after, limit=limit)
    return web.json_response({"frames": [row.to_json_dict() for row in rows]})


async def api_log_lines(request: web.Request) -> web.StreamResponse:
    """``/api/log.jsonl``: every frame the filters match as ``ocpp-agent log --json`` lines, streamed."""
    params = request.query
    _check_params(params, API_LOG_PARAMS - {"limit", "after"})
    flt = parse_filter(params)
    before = parse_int(params, "before", default=None, low=1)
    reader = request.app[LOG]
    response = web.StreamResponse(headers={"Content-Type": "application/jsonl; charset=utf-8",
                                           "Content-Disposition": 'attachment; filename="ocpp-log.jsonl"'})
    await response.prepare(request)
    while True:
        chunk = await asyncio.to_thread(reader.page, flt, before=before, limit=STREAM_CHUNK)
        if not chunk:
            break
        await response.write("".join(json.dumps(row.frame.to_json_dict()) + "\n" for row in chunk).encode())
        before = chunk[-1].id
    await response.write_eof()
    return response


async def api_sessions(request: web.Request) -> web.Response:
    """``/api/sessions``: ``{"sessions": [...]}``, newest first."""
    sessions = await asyncio.to_thread(read_sessions, request.app[CONFIG].station.data_dir)
    return web.json_response({"sessions": sessions})


ROUTES = (
    ("/", status_page), ("/events", events), ("/log", log_view), ("/log/rows", log_rows),
    ("/sessions", sessions_view), ("/config", config_view), ("/api/status", api_status), ("/api/log", api_log),
    ("/api/log.jsonl", api_log_lines), ("/api/sessions", api_sessions),
)


# ------------------------------------------------------------------ running it


def tls_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """The server TLS context of ``[web] tls_cert_file`` / ``tls_key_file`` (TLS 1.2 at least)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context


def listening_plan(config, listen: str | None = None) -> tuple[str, int, ssl.SSLContext | None]:
    """Host, port and TLS context to serve on; warns when a non-loopback address goes without TLS."""
    host, port = parse_listen(listen or config.web.listen)
    context = tls_context(config.web.tls_cert_file, config.web.tls_key_file) if config.web.tls else None
    if context is None and not is_loopback(host):
        log.warning("dashboard on %s:%d without TLS: the password and the pages cross the network in clear "
                    "(set [web] tls_cert_file and tls_key_file)", host, port)
    return host, port, context


def run_web(config, listen: str | None = None) -> int:
    """Serve the dashboard on ``listen`` (default ``[web] listen``) until SIGTERM/SIGINT; the exit status."""
    host, port, context = listening_plan(config, listen)
    asyncio.run(_serve(create_app(config), host, port, context))
    return 0


async def _serve(app: web.Application, host: str, port: int, context: ssl.SSLContext | None) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=context, shutdown_timeout=2.0)
        await site.start()
        scheme = "https" if context else "http"
        shown = f"[{host}]" if ":" in host else host
        print(f"ocpp-agent web: serving {scheme}://{shown}:{port}/", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            await runner.cleanup()
        sys.stdout.flush()
