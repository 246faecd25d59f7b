"""The sync server as a real process on a loopback port, with a client for both of its APIs.

Tests, benchmarks and the demo start ``campuscard server`` exactly as an operator would
(gunicorn on a real socket, SQLite file) and talk to it over HTTP.

Usage::

    srv = ServerProcess.start(Path("/tmp/campus.db"))
    m = srv.admin("POST", "/merchants", {"name": "Canteen"})
    srv.stop()
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CAMPUSCARD = ROOT / ".venv" / "bin" / "campuscard"
TOKEN = "test-admin-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``campuscard server`` on a loopback port, with an HTTP client for both APIs."""

    def __init__(self, proc: subprocess.Popen[bytes], db: Path, port: int) -> None:
        self.proc, self.db, self.port = proc, db, port
        self._conn: http.client.HTTPConnection | None = None
        self.offset = 0  # server clock minus ours: moved by advance()

    @classmethod
    def start(cls, db: Path, test_clock: bool = True) -> ServerProcess:
        port = free_port()
        cmd = [str(CAMPUSCARD), "server", "--db", str(db), "--host", "127.0.0.1", "--port", str(port)]
        if test_clock:
            cmd.append("--test-clock")
        env = dict(os.environ, CAMPUSCARD_ADMIN_TOKEN=TOKEN, PYTHONUNBUFFERED="1")
        # a session of its own: kill() reaches gunicorn's arbiter, its worker and the MAC helper
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                                start_new_session=True)
        srv = cls(proc, db, port)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited {proc.returncode}: {proc.stderr.read().decode()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return srv
            except OSError:
                time.sleep(0.05)
        srv.kill()
        raise RuntimeError(f"server did not listen on port {port} within 20 s")

    def stop(self) -> str:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
            _, err = self.proc.communicate()
        return err.decode(errors="replace")

    def kill(self) -> None:
        """SIGKILL to every process of the server at once, as a power cut would: nothing is
        flushed (killing gunicorn's arbiter alone lets its worker shut down cleanly)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)

    def pids(self) -> list[int]:
        """The server's processes below the one started: gunicorn's worker, its MAC helper."""

        def below(pid: int) -> list[int]:
            found: list[int] = []
            for task in Path(f"/proc/{pid}/task").iterdir():
                for c in (task / "children").read_text().split():
                    found += [int(c), *below(int(c))]
            return found

        return below(self.proc.pid)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes, str]:
        """(status, body, content type); one keep-alive connection, reopened when needed."""
        for attempt in (0, 1):
            if self._conn is None:
                self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                self._conn.request(method, path, body=body, headers=headers or {})
                resp = self._conn.getresponse()
                data = resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    self._conn.close()
                    self._conn = None
                return resp.status, data, resp.getheader("Content-Type", "")
            except (http.client.HTTPException, ConnectionError):
                self._conn.close()
                self._conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def admin_raw(self, method: str, path: str, body: Any = None, token: str = TOKEN) -> tuple[int, Any]:
        headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
        status, data, _ = self.request(method, "/api/v1/admin" + path,
                                       None if body is None else json.dumps(body).encode(), headers)
        return status, json.loads(data) if data else None

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        status, data = self.admin_raw(method, path, body)
        if status >= 300:
            raise AssertionError(f"admin {method} {path} -> {status} {data}")
        return data

    def now(self) -> int:
        """Server time, from our clock and the offset the test clock was moved by."""
        return int(time.time()) + self.offset

    def advance(self, seconds: int) -> dict[str, Any]:
        out = self.admin("POST", "/clock/advance", {"seconds": seconds})
        self.offset = out["now"] - int(time.time())
        return out

    def campuscard(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, CAMPUSCARD_ADMIN_TOKEN=TOKEN)
        return subprocess.run([str(CAMPUSCARD), *args], capture_output=True, text=True, env=env, cwd=ROOT,
                              timeout=60)


