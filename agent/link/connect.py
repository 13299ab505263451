"""Opening a connection to the CSMS: the options, their checks, and the blocking handshakes.

``connect_blocking`` runs in the connection's writer thread (see
``agent.link.transport``): it opens the socket, does the TLS handshake for
security profiles 2 and 3 (server verification, client certificate for 3),
sends Basic auth for profiles 1 and 2, and checks the subprotocol the CSMS
selected. Every way this fails becomes a ``ConnectFailed`` whose message says
what to fix, and which OCPP security event it is, if any.
"""

from __future__ import annotations

import base64
import concurrent.futures
import os
import socket
import ssl
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import websocket

from agent.errors import ConnectFailed

_X509_EXPIRED = 10
_X509_NAME_MISMATCH = (62, 64)  # host name, IP address


@dataclass(frozen=True)
class TransportOptions:
    """Where and how to connect to the CSMS; checked by ``option_problems`` before any network use."""

    url: str                    # full URL including the station id path segment, ws:// or wss://
    subprotocol: str            # "ocpp1.6", "ocpp2.0.1" or "ocpp2.1" (the adapter's)
    station_id: str             # Basic-auth user name (profiles 1 and 2)
    security_profile: int = 0   # 0 plain, 1 Basic auth, 2 Basic auth over TLS, 3 mutual TLS
    password: str = field(default="", repr=False)  # repr=False: never shown in logs
    ca_file: str = ""           # CA bundle for wss ("" = system default store)
    client_cert_file: str = ""  # profile 3
    client_key_file: str = ""   # profile 3
    connect_timeout_s: float = 10.0  # per socket operation while connecting
    ping_interval_s: float = 30.0    # 0 disables keepalive pings
    ping_timeout_s: float = 10.0     # any frame must arrive this soon after a ping or close frame


def option_problems(o: TransportOptions) -> list[str]:
    """Every problem with the options, found before touching the network."""
    parts = urlsplit(o.url)
    scheme = parts.scheme
    problems = []
    try:
        url_ok = scheme in ("ws", "wss") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a port that is not a number
        url_ok = False
    if not url_ok:
        problems.append(f"url must be ws:// or wss:// with a host, got {display_url(o.url)!r}")
    if not o.subprotocol:
        problems.append("subprotocol is empty")
    if o.security_profile not in (0, 1, 2, 3):
        problems.append(f"security_profile must be 0-3, got {o.security_profile}")
    if o.security_profile in (2, 3) and scheme != "wss":
        problems.append(f"security profile {o.security_profile} requires a wss:// url")
    if o.security_profile in (1, 2):
        if not o.password:
            problems.append(f"security profile {o.security_profile} requires a password")
        if not o.station_id or ":" in o.station_id:
            problems.append("station_id must be non-empty and without ':' for Basic auth")
    if o.security_profile == 3 and not (o.client_cert_file and o.client_key_file):
        problems.append("security profile 3 requires client_cert_file and client_key_file")
    for name in ("ca_file", "client_cert_file", "client_key_file"):
        path = getattr(o, name)
        if path and scheme == "wss" and not os.path.isfile(path):
            problems.append(f"{name} not found: {path}")
    if o.connect_timeout_s <= 0 or o.ping_timeout_s <= 0 or o.ping_interval_s < 0:
        problems.append("timeouts must be positive and ping_interval_s not negative")
    return problems


def connect_blocking(o: TransportOptions) -> websocket.WebSocket:
    """Open the socket, do the TLS and WebSocket handshakes, check the subprotocol."""
    ws = websocket.WebSocket(enable_multithread=True, sslopt=_ssl_options(o))
    try:
        ws.connect(o.url, timeout=o.connect_timeout_s, header=_request_headers(o),
                   suppress_origin=True,  # a station is not a browser
                   redirect_limit=0)      # a redirect would carry the credentials elsewhere
    except Exception as exc:
        raise ConnectFailed(_connect_error_message(exc, ws, o), security_event=_security_event(exc)) from exc
    selected = (ws.headers or {}).get("sec-websocket-protocol")
    if selected != o.subprotocol:
        _fail_handshake(ws)
        detail = f"it selected {selected!r}" if selected else "it selected none"
        raise ConnectFailed(f"CSMS did not accept subprotocol {o.subprotocol} ({detail})")
    ws.settimeout(None)  # the reader blocks without polling; shutdown wakes it
    return ws


def _request_headers(o: TransportOptions) -> list[str]:
    # The subprotocol is requested here rather than via the library's
    # `subprotocols`, whose mismatch error does not say what went wrong.
    headers = [f"Sec-WebSocket-Protocol: {o.subprotocol}"]
    if o.security_profile in (1, 2):
        token = base64.b64encode(f"{o.station_id}:{o.password}".encode()).decode("ascii")
        headers.append(f"Authorization: Basic {token}")
    return headers


def _ssl_options(o: TransportOptions) -> dict:
    if urlsplit(o.url).scheme != "wss":
        return {}
    try:
        # Verifies the chain and the host name (CERT_REQUIRED, check_hostname).
        context = ssl.create_default_context(cafile=o.ca_file or None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if o.security_profile == 3:
            context.load_cert_chain(o.client_cert_file, o.client_key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConnectFailed(f"cannot load TLS files: {describe_error(exc)}") from exc
    return {"context": context}


def _fail_handshake(ws: websocket.WebSocket) -> None:
    try:
        ws.send_close(1002)
    except Exception:
        pass  # best effort: the socket goes either way
    ws.shutdown()


def _connect_error_message(exc: Exception, ws: websocket.WebSocket, o: TransportOptions) -> str:
    """A specific, actionable message for a failed connect."""
    parts = urlsplit(o.url)
    where = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'wss' else 80)}"
    response = ws.handshake_response
    if isinstance(exc, websocket.WebSocketBadStatusException):
        if exc.status_code == 401:
            return "CSMS rejected the credentials (HTTP 401)"
        return f"CSMS refused the WebSocket upgrade (HTTP {exc.status_code} {exc.status_message})"
    if response is not None and 300 <= response.status < 400:
        return (f"CSMS redirected to {response.headers.get('location')!r} (HTTP "
                f"{response.status}); redirects are not followed")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _certificate_message(exc, parts.hostname or "")
    if isinstance(exc, ssl.SSLError):
        return _tls_alert_message(exc)
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused by {where}"
    if isinstance(exc, (TimeoutError, websocket.WebSocketTimeoutException)):
        return f"no answer from {where} within {o.connect_timeout_s:g} s"
    if isinstance(exc, (socket.gaierror, websocket.WebSocketAddressException)):
        return f"cannot resolve host {parts.hostname!r}"
    if isinstance(exc, (ConnectionResetError, websocket.WebSocketConnectionClosedException)):
        return f"CSMS at {where} closed the connection before answering{_tls_hint(o)}"
    if isinstance(exc, OSError):
        return f"cannot reach {where}: {describe_error(exc)}"
    if isinstance(exc, websocket.WebSocketException):
        return f"invalid WebSocket handshake from CSMS: {exc}"
    return f"cannot connect to {where}: {describe_error(exc)}"


def _security_event(exc: Exception) -> str | None:
    """The OCPP security event a failed connect is: the CSMS's certificate, or our credentials refused."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "InvalidCsmsCertificate"
    if isinstance(exc, websocket.WebSocketBadStatusException) and exc.status_code == 401:
        return "FailedToAuthenticateAtCsms"
    return None


def _certificate_message(exc: ssl.SSLCertVerificationError, host: str) -> str:
    if exc.verify_code in _X509_NAME_MISMATCH:
        return f"TLS: the CSMS certificate is not valid for host name {host!r}"
    if exc.verify_code == _X509_EXPIRED:
        return "TLS: the CSMS certificate has expired"
    return f"TLS: the CSMS certificate is not trusted ({exc.verify_message}); check ca_file"


def _tls_hint(o: TransportOptions) -> str:
    # With TLS 1.3 the server checks the client certificate after our side of the
    # handshake is done, and an asyncio-based CSMS then just drops the connection.
    if urlsplit(o.url).scheme != "wss":
        return ""
    if o.security_profile == 3:
        return "; it probably rejected the client certificate"
    return "; it probably requires a client certificate (security profile 3)"


def _tls_alert_message(exc: ssl.SSLError) -> str:
    reason = exc.reason or ""
    if "CERTIFICATE_REQUIRED" in reason:
        return "TLS: the CSMS requires a client certificate (mutual TLS, security profile 3)"
    if any(alert in reason for alert in ("BAD_CERTIFICATE", "UNKNOWN_CA", "CERTIFICATE_UNKNOWN",
                                         "CERTIFICATE_EXPIRED", "ACCESS_DENIED")):
        return f"TLS: the CSMS rejected the client certificate ({reason})"
    return f"TLS handshake with the CSMS failed ({reason or exc})"


def discard_connection(future: concurrent.futures.Future) -> None:
    """Shut down the socket a cancelled ``connect_blocking`` opened after all (a done-callback)."""
    if not future.cancelled() and future.exception() is None:
        future.result().shutdown()


def describe_error(exc: BaseException) -> str:
    """An OS error's own words ("Connection refused"), else the exception's text or its type name."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def display_url(url: str) -> str:
    """The URL without any user:password part, for logs and reprs."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
