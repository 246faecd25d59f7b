"""A small HTTP/1.1 client on MicroPython sockets, for the terminal's sync with the server.

One keep-alive connection, a timeout on every socket operation, request bodies streamed from
a writer callback (a batch of records is never built whole in RAM) and responses read into a
buffer the caller allocated once. No third-party library; the same code runs on the ESP32.

Usage::

    c = HttpClient("http://10.0.0.5:8080", timeout_s=3)
    status, n = c.post("/api/v1/terminal/upload", length, lambda write: write(body))
    body = c.read_body(buf)       # memoryview of buf[:n]
    c.close()
"""

import socket

try:
    from micropython import const
except ImportError:
    from protocol.compat import const

_LINE_MAX = const(512)


class HttpError(Exception):
    """The server could not be reached or answered something that is not HTTP/1.1."""


def parse_url(url):
    """``(host, port, path_prefix)`` of an ``http://host[:port][/prefix]`` URL."""
    if not url.startswith("http://"):
        raise HttpError("server URL must start with http://, got %r" % url)
    rest = url[7:]
    slash = rest.find("/")
    hostport, prefix = (rest, "") if slash < 0 else (rest[:slash], rest[slash:].rstrip("/"))
    colon = hostport.rfind(":")
    if colon >= 0:
        try:
            return hostport[:colon], int(hostport[colon + 1:]), prefix
        except ValueError:
            raise HttpError("bad port in server URL %r" % url)
    return hostport, 80, prefix


class HttpClient:
    def __init__(self, url, timeout_s=5):
        self.host, self.port, self.prefix = parse_url(url)
        self.timeout_s = timeout_s
        self._sock = None
        self._line = bytearray(_LINE_MAX)
        self._rbuf = bytearray(256)
        self._rmv = memoryview(self._rbuf)
        self._rstart = 0
        self._rend = 0
        self._remaining = 0

    def _connect(self):
        if self._sock is not None:
            return
        try:
            addr = socket.getaddrinfo(self.host, self.port)[0][-1]
            s = socket.socket()
            s.settimeout(self.timeout_s)
            s.connect(addr)
        except OSError as e:
            raise HttpError("cannot reach %s:%d (%s)" % (self.host, self.port, e))
        self._sock = s
        self._rstart = self._rend = 0

    def close(self):
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock = None

    def _live(self):
        s = self._sock
        if s is None:
            raise HttpError("connection closed")
        return s

    def _send(self, data):
        s = self._live()
        mv = memoryview(data)
        sent = 0
        while sent < len(mv):
            try:
                n = s.send(mv[sent:])
            except OSError as e:
                self.close()
                raise HttpError("send failed: %s" % e)
            if not n:
                self.close()
                raise HttpError("connection closed while sending")
            sent += n

    def _fill(self):
        s = self._live()
        try:
            n = s.recv_into(self._rbuf) if hasattr(s, "recv_into") else self._recv_copy(s)
        except OSError as e:
            self.close()
            raise HttpError("receive failed: %s" % e)
        if not n:
            self.close()
            raise HttpError("connection closed by the server")
        self._rstart, self._rend = 0, n

    def _recv_copy(self, s):
        data = s.recv(len(self._rbuf))
        self._rbuf[:len(data)] = data
        return len(data)

    def _readline(self):
        n = 0
        while True:
            if self._rstart == self._rend:
                self._fill()
            b = self._rbuf[self._rstart]
            self._rstart += 1
            if b == 10:
                return bytes(self._line[:n]).rstrip(b"\r")
            if n >= _LINE_MAX:
                self.close()
                raise HttpError("response header line longer than %d bytes" % _LINE_MAX)
            self._line[n] = b
            n += 1

    def post(self, path, length, writer, content_type="application/cbor"):
        """Send a POST whose ``length``-byte body ``writer(write)`` produces; return (status, body length).

        A dropped keep-alive connection is reopened once before the request is given up.
        """
        for attempt in (0, 1):
            self._connect()
            try:
                self._send(b"POST %s%s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
                           b"Connection: keep-alive\r\n\r\n" % (
                               self.prefix.encode(), path.encode(), self.host.encode(), content_type.encode(),
                               length))
                sent = [0]

                def write(data):
                    sent[0] += len(data)
                    self._send(data)

                writer(write)
                if sent[0] != length:
                    self.close()
                    raise HttpError("body writer produced %d bytes, declared %d" % (sent[0], length))
                return self._read_head()
            except HttpError:
                if attempt or self._sock is not None:
                    raise
        raise HttpError("unreachable")

    def _read_head(self):
        status_line = self._readline()
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            self.close()
            raise HttpError("not an HTTP response: %r" % status_line[:40])
        status = int(parts[1])
        length = -1
        close = False
        while True:
            line = self._readline()
            if not line:
                break
            lower = line.lower()
            if lower.startswith(b"content-length:"):
                length = int(line[15:].strip())
            elif lower.startswith(b"connection:") and b"close" in lower:
                close = True
            elif lower.startswith(b"transfer-encoding:"):
                self.close()
                raise HttpError("chunked responses are not supported")
        if length < 0:
            self.close()
            raise HttpError("response without Content-Length")
        self._remaining = length
        self._close_after = close
        return status, length

    def read_body(self, buf):
        """Read the whole response body into ``buf``; return a memoryview of it."""
        n = self._remaining
        if n > len(buf):
            self.discard_body()
            raise HttpError("response of %d bytes exceeds the %d-byte buffer" % (n, len(buf)))
        mv = memoryview(buf)
        got = 0
        while got < n:
            if self._rstart == self._rend:
                self._fill()
            take = min(n - got, self._rend - self._rstart)
            mv[got:got + take] = self._rmv[self._rstart:self._rstart + take]
            self._rstart += take
            got += take
        self._remaining = 0
        if self._close_after:
            self.close()
        return mv[:n]

    def discard_body(self):
        while self._remaining:
            if self._rstart == self._rend:
                self._fill()
            take = min(self._remaining, self._rend - self._rstart)
            self._rstart += take
            self._remaining -= take
        if self._close_after:
            self.close()
