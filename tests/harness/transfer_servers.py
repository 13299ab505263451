"""Loopback file-transfer servers for firmware, diagnostics and log tests.

Every server binds 127.0.0.1 on a free port: a ThreadingHTTPServer (GET a file,
PUT/POST an upload) and a tiny FTP server (USER/PASS/TYPE/PASV/RETR/STOR/QUIT), each optionally
behind TLS (HTTPS, explicit FTPS). tests/conftest.py offers them as the fixtures ``http_server``,
``ftp_server``, ``https_server`` and ``ftps_server``.
"""

import contextlib
import socket
import socketserver
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

IMAGE = b"\x7fFIRMWARE v2.0\n" * 1000
CLOSED_PORT_URL = "http://127.0.0.1:1/"  # nothing listens on port 1: connection refused at once


class _HttpHandler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        body = self.server.files.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def do_PUT(self):  # noqa: N802
        self.server.uploads[self.path] = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT

    def log_message(self, *args):
        pass


class _FtpHandler(socketserver.StreamRequestHandler):
    """Just enough FTP for ftplib: passive mode, binary RETR and STOR of absolute paths."""

    def reply(self, text: str) -> None:
        self.wfile.write(text.encode() + b"\r\n")

    def handle(self):
        files, passive, protected = self.server.files, None, False
        tls = getattr(self.server, "tls", None)  # an ssl.SSLContext: explicit FTPS (AUTH TLS, PROT P)
        self.reply("220 test ftp")
        while line := self.rfile.readline():
            command, _, argument = line.decode().strip().partition(" ")
            command = command.upper()
            if command == "AUTH" and tls is not None:
                self.reply("234 proceed with TLS")
                self.request = tls.wrap_socket(self.request, server_side=True)
                self.rfile = self.request.makefile("rb")
                self.wfile = self.request.makefile("wb", buffering=0)
            elif command == "PBSZ":
                self.reply("200 PBSZ=0")
            elif command == "PROT":
                protected = argument.upper() == "P"
                self.reply("200 protection level set")
            elif tls is not None and command in ("USER", "PASS") and not isinstance(self.request, ssl.SSLSocket):
                self.reply("530 TLS required")  # an FTPS server never takes a password in clear
            elif command == "USER":
                self.reply("331 password please")
            elif command == "PASS":
                self.server.logins.append(argument)
                self.reply("230 logged in")
            elif command == "TYPE":
                self.reply("200 type set")
            elif command == "PASV":
                passive = socket.create_server(("127.0.0.1", 0))
                port = passive.getsockname()[1]
                self.reply(f"227 Entering Passive Mode (127,0,0,1,{port >> 8},{port & 255}).")
            elif command in ("RETR", "STOR") and passive is not None:
                if command == "RETR" and argument not in files:
                    passive.close()
                    passive = None
                    self.reply("550 no such file")
                    continue
                self.reply("150 opening data connection")
                data, _ = passive.accept()
                passive.close()
                passive = None
                if protected:
                    data = tls.wrap_socket(data, server_side=True)
                with data:
                    if command == "RETR":
                        data.sendall(files[argument])
                    else:
                        files[argument] = b"".join(iter(lambda: data.recv(65536), b""))
                    if protected:
                        data.unwrap()  # close_notify both ways, as ftplib's FTP_TLS expects
                self.reply("226 transfer complete")
            elif command == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 not implemented")


@contextlib.contextmanager
def _serving(server, url: str):
    """``server`` answering on a thread, with its ``url``; shut down and closed on exit."""
    server.url = url
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def http_server(*, tls: ssl.SSLContext | None = None):
    """A loopback HTTP(S) server offering the firmware image; ``server.uploads`` keeps what was PUT or POSTed."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HttpHandler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    server.files, server.uploads = {"/fw/image-2.0.bin": IMAGE}, {}
    scheme = "https" if tls is not None else "http"
    return _serving(server, f"{scheme}://127.0.0.1:{server.server_address[1]}")


def ftp_server(*, tls: ssl.SSLContext | None = None):
    """A loopback FTP server (explicit FTPS with ``tls``) offering the firmware image; ``server.files`` keeps
    the uploads and ``server.logins`` the passwords it was given."""
    socketserver.ThreadingTCPServer.daemon_threads = True
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _FtpHandler)
    if tls is not None:
        server.tls = tls
    server.files, server.logins = {"/pub/image-2.0.bin": IMAGE}, []
    scheme = "ftps" if tls is not None else "ftp"
    return _serving(server, f"{scheme}://agent:pa%40ss@127.0.0.1:{server.server_address[1]}")
