"""A keep-alive HTTP connection to the Datadog Agent (or the Lambda extension): http, https, unix.

One request at a time, under the exporter's lock, with a minimal HTTP/1.1 client (Content-Length,
chunked and close-delimited responses, 1xx skipped, ``Connection: close`` honoured). Header and
body go out in a single ``send`` (and TCP_NODELAY is set), because a separate small write followed
by the body waits for the peer's delayed ACK under Nagle's algorithm: ~40 ms per request.
"""

from __future__ import annotations

import os
import socket
from typing import Any, Dict, NamedTuple, Optional, Tuple, Union
from urllib.parse import unquote, urlsplit

from otel_dd_lambda import config

DEFAULT_URL = "http://127.0.0.1:8126"


class Endpoint(NamedTuple):
    scheme: str  # "http", "https" or "unix"
    host: str  # host name, or the socket path for unix
    port: int

    @property
    def url(self) -> str:
        if self.scheme == "unix":
            return "unix://" + self.host
        return "%s://%s:%d" % (self.scheme, self.host, self.port)


def parse_agent_url(url: str) -> Optional[Endpoint]:
    """``http://h:p``, ``https://h:p`` or ``unix:///path`` (also ``unix:/path``); None if invalid."""
    try:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        if scheme == "unix":
            path = unquote(parts.path or parts.netloc)
            if parts.netloc and parts.path:  # unix://relative/dir/sock
                path = unquote(parts.netloc + parts.path)
            return Endpoint("unix", path, 0) if path else None
        if scheme not in ("http", "https") or not parts.hostname:
            return None
        port = parts.port or (443 if scheme == "https" else 80)
        return Endpoint(scheme, parts.hostname, port)
    except ValueError:
        return None


def resolve_endpoint(agent_url: Optional[str] = None) -> Endpoint:
    """``agent_url``, else ``DD_TRACE_AGENT_URL``, else ``DD_AGENT_HOST``+``DD_TRACE_AGENT_PORT``."""
    settings = config.exporter_settings()
    for candidate in (agent_url, settings.agent_url):
        if candidate:
            endpoint = parse_agent_url(candidate)
            if endpoint is not None:
                return endpoint
    host = settings.agent_host or "127.0.0.1"
    port_text = settings.agent_port or "8126"
    try:
        port = int(port_text)
        if not 0 < port < 65536:
            raise ValueError
    except ValueError:
        port = 8126
    return Endpoint("http", host, port)


class RemoteDisconnected(ConnectionResetError):
    """The peer closed the connection before sending a response."""


class ProtocolError(OSError):
    """The peer's answer is not HTTP/1.x (garbage status line, bad framing, ...)."""


def _nodelay(sock: Optional[socket.socket]) -> None:
    try:
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass


class _Connection:
    """One socket to the agent (TCP, TLS or unix), opened on first use."""

    __slots__ = ("endpoint", "timeout", "sock", "host_header")

    def __init__(self, endpoint: Endpoint, timeout: float) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.sock: Any = None
        if endpoint.scheme == "unix":
            self.host_header = "localhost"
        else:
            default = 443 if endpoint.scheme == "https" else 80
            host = "[%s]" % endpoint.host if ":" in endpoint.host else endpoint.host
            self.host_header = host if endpoint.port == default else "%s:%d" % (host, endpoint.port)

    def connect(self) -> None:
        endpoint = self.endpoint
        if endpoint.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(self.timeout)
                sock.connect(endpoint.host)
            except BaseException:
                sock.close()
                raise
        else:
            sock = socket.create_connection((endpoint.host, endpoint.port), self.timeout)
            _nodelay(sock)
            if endpoint.scheme == "https":
                import ssl  # only for https: ~5 ms of import the extension (http) never needs

                try:
                    sock = ssl.create_default_context().wrap_socket(sock, server_hostname=endpoint.host)
                except BaseException:
                    sock.close()
                    raise
        self.sock = sock

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()


class Response(NamedTuple):
    status: int
    body: bytes


_MAX_HEADER = 64 * 1024


def _read_response(sock: Any, max_response: int) -> Tuple[int, bytes, bool]:
    """``(status, body, will_close)`` of one HTTP/1.x response read from ``sock``."""
    recv = sock.recv
    buf = b""
    while True:
        end = buf.find(b"\r\n\r\n")
        while end < 0:
            if len(buf) > _MAX_HEADER:
                raise ProtocolError("response header too long")
            data = recv(65536)
            if not data:
                if buf:
                    raise ProtocolError("connection closed inside the response header")
                raise RemoteDisconnected("remote end closed connection without response")
            buf += data
            end = buf.find(b"\r\n\r\n")
        head = buf[:end].decode("latin-1").split("\r\n")
        rest = buf[end + 4:]
        status_line = head[0].split(None, 2)
        if len(status_line) < 2 or not status_line[0].startswith("HTTP/1.") or not status_line[1].isdigit() \
                or len(status_line[1]) != 3:
            raise ProtocolError("bad status line %r" % head[0][:80])
        status = int(status_line[1])
        if 100 <= status < 200:  # 100 Continue and friends: the real answer follows
            buf = rest
            continue
        break
    # only three headers matter; a repeated one counts with its last value
    connection = transfer_encoding = ""
    length_text = None
    for line in head[1:]:
        key, sep, value = line.partition(":")
        if sep:
            key = key.strip().lower()
            if key == "content-length":
                length_text = value.strip()
            elif key == "connection":
                connection = value.strip()
            elif key == "transfer-encoding":
                transfer_encoding = value.strip()
    connection = connection.lower()
    will_close = "close" in connection or (status_line[0] == "HTTP/1.0" and "keep-alive" not in connection)
    if status in (204, 304):
        return status, b"", will_close
    if "chunked" in transfer_encoding.lower():
        body, rest = _read_chunked(recv, rest, max_response)
        return status, body, will_close
    if length_text is None:  # delimited by the end of the connection
        parts = [rest]
        size = len(rest)
        while True:
            data = recv(65536)
            if not data:
                break
            if size < max_response:
                parts.append(data)
            size += len(data)
        return status, b"".join(parts)[:max_response], True
    try:
        length = int(length_text)
        if length < 0:
            raise ValueError
    except ValueError:
        raise ProtocolError("bad Content-Length %r" % length_text[:40]) from None
    if len(rest) >= length:
        return status, rest[:min(length, max_response)], will_close
    parts = [rest]
    size = len(rest)
    while size < length:
        data = recv(min(65536, length - size))
        if not data:
            raise ProtocolError("connection closed inside the response body")
        if size < max_response:
            parts.append(data)
        size += len(data)
    return status, b"".join(parts)[:max_response], will_close


def _read_chunked(recv: Any, buf: bytes, max_response: int) -> Tuple[bytes, bytes]:
    parts = []
    kept = 0
    while True:
        eol = buf.find(b"\r\n")
        while eol < 0:
            data = recv(65536)
            if not data:
                raise ProtocolError("connection closed inside a chunked body")
            buf += data
            eol = buf.find(b"\r\n")
        try:
            size = int(buf[:eol].split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise ProtocolError("bad chunk size") from None
        buf = buf[eol + 2:]
        if size == 0:
            # trailers, up to the empty line
            while True:
                eol = buf.find(b"\r\n")
                while eol < 0:
                    data = recv(65536)
                    if not data:
                        return b"".join(parts), b""
                    buf += data
                    eol = buf.find(b"\r\n")
                line, buf = buf[:eol], buf[eol + 2:]
                if not line:
                    return b"".join(parts), buf
        while len(buf) < size + 2:
            data = recv(65536)
            if not data:
                raise ProtocolError("connection closed inside a chunk")
            buf += data
        if kept < max_response:
            parts.append(buf[:size])
            kept += size
        buf = buf[size + 2:]


class AgentTransport:
    """One persistent connection; not thread-safe (the exporter serializes calls).

    A small HTTP/1.1 client of its own rather than ``http.client``: the request (header block and
    body) leaves in one ``sendall`` and the answer is read with one ``recv`` in the usual case,
    without ``http.client``'s e-mail header parser (~100 µs per request) or its import of
    ``ssl`` and ``email`` at cold start (~10 ms). TLS is used only for ``https://`` endpoints.
    """

    def __init__(self, endpoint: Endpoint, max_response: int = 1 << 20) -> None:
        self.endpoint = endpoint
        self._max_response = max_response
        self._conn: Optional[_Connection] = None
        self._pid = os.getpid()
        self._request_line: Tuple[str, str, bytes] = ("", "", b"")  # last (method, path, encoded)

    def _connection(self, timeout: float) -> _Connection:
        conn = self._conn
        if conn is not None and self._pid != os.getpid():
            # a forked child must not share the parent's socket: drop it without closing it
            conn = self._conn = None
        if conn is None:
            self._pid = os.getpid()
            conn = self._conn = _Connection(self.endpoint, timeout)
        conn.timeout = timeout
        return conn

    def request(self, method: str, path: str, body: bytes, headers: Union[Dict[str, str], bytes],
                timeout: float) -> Response:
        """Send one request; raises OSError on transport failure (refused, reset, timeout, not HTTP).

        ``headers`` is a dict, or the header lines already encoded (``encode_headers``): the
        exporter sends the same ones on every request.

        A keep-alive connection the server closed while idle fails on first use: that case is
        retried once on a fresh connection when nothing of the response was read.
        """
        block = headers if type(headers) is bytes else encode_headers(headers)
        tail = b"Content-Length: %d\r\n\r\n" % len(body)
        for attempt in (0, 1):
            conn = self._connection(timeout)
            reused = conn.sock is not None
            try:
                if not reused:
                    conn.connect()
                sock = conn.sock
                sock.settimeout(timeout)
                # the request line and Host depend only on the endpoint: encoded once
                line = self._request_line
                if line[0] != method or line[1] != path:
                    line = self._request_line = (method, path, (
                        "%s %s HTTP/1.1\r\nHost: %s\r\n" % (method, path, conn.host_header)).encode("latin-1"))
                # header block and body in one send: a separate small write waits for the
                # peer's delayed ACK under Nagle's algorithm (~40 ms per request)
                sock.sendall(b"".join((line[2], block, tail, body)))
                status, data, will_close = _read_response(sock, self._max_response)
                if will_close:
                    self.close()
                return Response(status, data)
            except (RemoteDisconnected, BrokenPipeError, ConnectionResetError) as error:
                self.close()
                if not reused or attempt:
                    raise error
            except BaseException:
                self.close()
                raise
        raise ConnectionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        conn = self._conn
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass


def encode_headers(headers: Dict[str, str]) -> bytes:
    """Header lines (``Key: value\\r\\n`` each) as they go on the wire."""
    return "".join(["%s: %s\r\n" % (key, value) for key, value in headers.items()]).encode("latin-1")


def parse_response_rates(body: bytes) -> Optional[Dict[str, float]]:
    """``rate_by_service`` from an agent response, or None for anything unexpected."""
    if not body or body[:1] != b"{":
        return None
    import json

    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    rates = parsed.get("rate_by_service") if isinstance(parsed, dict) else None
    if not isinstance(rates, dict):
        return None
    return {str(k): float(v) for k, v in rates.items() if isinstance(v, (int, float))}

