"""The campus network between terminals and the server, as a TCP relay that can be cut.

Terminals are configured with the relay's address. ``cut()`` drops every open connection and
refuses new ones, as a broken link would; ``restore()`` lets traffic through again.

Usage::

    link = NetLink(("127.0.0.1", server_port)).start()
    url = link.url                   # give this to the terminals
    link.cut(); ...; link.restore()
    link.close()
"""

from __future__ import annotations

import select
import socket
import threading


class NetLink:
    def __init__(self, target: tuple[str, int]):
        self.target = target
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(256)
        self.port = self._listener.getsockname()[1]
        self.up = True
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._lock = threading.Lock()
        self._closed = False
        self.connections = 0
        self.refused = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> NetLink:
        threading.Thread(target=self._accept, name="netlink-accept", daemon=True).start()
        return self

    def cut(self) -> None:
        """Break the link: close every relayed connection, refuse new ones."""
        self.up = False
        with self._lock:
            pairs = list(self._pairs)
            self._pairs.clear()
        for a, b in pairs:
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self.up:
                self.refused += 1
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                client.close()  # RST: the terminal sees the connection fail at once
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            self.connections += 1
            with self._lock:
                self._pairs.add((client, server))
            threading.Thread(target=self._relay, args=(client, server), daemon=True).start()

    def _relay(self, a: socket.socket, b: socket.socket) -> None:
        peer = {a: b, b: a}
        try:
            while True:
                ready, _, _ = select.select([a, b], [], [], 1.0)
                if not self.up and (a, b) not in self._pairs:
                    return
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    peer[s].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            with self._lock:
                self._pairs.discard((a, b))
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass
