"""The firmware's HTTP/1.1 client on MicroPython against real sockets: keep-alive, streamed
bodies, timeouts and malformed answers end in HttpError, never a hang."""

from __future__ import annotations

import http.server
import socket
import subprocess
import threading
from collections.abc import Iterator

import pytest

from tools.mpy_runtime import micropython_binary, micropython_env, mpy_cwd


class Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections: set[tuple[str, int]] = set()

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        Echo.connections.add(self.client_address)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/big":
            out = b"x" * 5000
        elif self.path == "/slow":
            threading.Event().wait(3)
            out = b""
        elif self.path == "/garbage":
            self.wfile.write(b"SMTP hello\r\n\r\n")
            self.wfile.flush()
            return
        else:
            out = b"echo:" + body[::-1]
        self.send_response(201 if self.path == "/created" else 200)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def server() -> Iterator[int]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    srv.daemon_threads = True
    srv.block_on_close = False
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def run(script: str) -> list[str]:
    proc = subprocess.run([micropython_binary(), "-X", "heapsize=64K", "-c", script], capture_output=True, text=True,
                          env=micropython_env(), cwd=mpy_cwd(), timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.splitlines()


def test_keep_alive_and_streamed_body(server: int) -> None:
    Echo.connections.clear()
    out = run(f"""
from firmware.http_client import HttpClient
c = HttpClient('http://127.0.0.1:{server}', 3)
buf = bytearray(4000)
for i in range(3):
    st, n = c.post('/x', 5, lambda w: w(b'hello'))
    print(st, bytes(c.read_body(buf)).decode())
st, n = c.post('/created', 3000, lambda w: [w(b'ab' * 100) for _ in range(15)])
print(st, n, len(c.read_body(buf)))
""")
    assert out == ["200 echo:olleh"] * 3 + ["201 3005 3005"]
    assert len(Echo.connections) == 1  # one keep-alive connection served all four


def test_errors_are_http_errors_not_hangs(server: int) -> None:
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    closed_port = free.getsockname()[1]
    free.close()
    out = run(f"""
from firmware.http_client import HttpClient, HttpError, parse_url
def attempt(url, path, bufsize=100, timeout=1):
    c = HttpClient(url, timeout)
    try:
        st, n = c.post(path, 1, lambda w: w(b'z'))
        c.read_body(bytearray(bufsize))
        print('OK', st)
    except HttpError as e:
        print('HttpError', e)
attempt('http://127.0.0.1:{closed_port}', '/x')
attempt('http://127.0.0.1:{server}', '/big')
attempt('http://127.0.0.1:{server}', '/slow')
attempt('http://127.0.0.1:{server}', '/garbage')
try:
    parse_url('https://x')
except HttpError as e:
    print('HttpError', e)
print(parse_url('http://10.0.0.5:8080/cc/'))
""")
    assert out[0].startswith("HttpError cannot reach 127.0.0.1")
    assert out[1] == "HttpError response of 5000 bytes exceeds the 100-byte buffer"
    assert out[2].startswith("HttpError receive failed")
    assert out[3].startswith("HttpError not an HTTP response")
    assert out[4].startswith("HttpError server URL must start with http://")
    assert out[5] == "('10.0.0.5', 8080, '/cc')"
