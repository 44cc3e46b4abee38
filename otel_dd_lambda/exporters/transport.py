"""A keep-alive HTTP connection to the Datadog Agent (or the Lambda extension): http, https, unix.

``http.client`` is enough: one request at a time, under the exporter's lock. Header and body go
out in a single ``send`` (and TCP_NODELAY is set), because a separate small write followed by the
body waits for the peer's delayed ACK under Nagle's algorithm: ~40 ms per request.
"""

from __future__ import annotations

import http.client
import os
import socket
from typing import Dict, NamedTuple, Optional, Union
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


class _OneSendMixin:
    """Coalesces http.client's two writes (header block, then body) into one ``sendall``.

    ``request()`` arms ``_hold_next`` when a body follows; the header block is held back and
    sent together with the body. ``flush_held()`` covers any path where no body write follows.
    """

    _hold_next = False
    _held: Optional[bytes] = None

    def send(self, data) -> None:  # type: ignore[no-untyped-def]
        if self._hold_next and self._held is None and isinstance(data, (bytes, bytearray)):
            self._held = bytes(data)
            return
        if self._held is not None:
            data = self._held + bytes(data)
            self._held = None
            self._hold_next = False
        super().send(data)  # type: ignore[misc]

    def flush_held(self) -> None:
        self._hold_next = False
        if self._held is not None:
            held, self._held = self._held, None
            super().send(held)  # type: ignore[misc]


def _nodelay(sock: Optional[socket.socket]) -> None:
    try:
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass


class _UnixHTTPConnection(_OneSendMixin, http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self._socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class _TCPHTTPConnection(_OneSendMixin, http.client.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _nodelay(self.sock)


class _TLSHTTPConnection(_OneSendMixin, http.client.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _nodelay(self.sock)


_Connection = Union[_UnixHTTPConnection, _TCPHTTPConnection, _TLSHTTPConnection]


class Response(NamedTuple):
    status: int
    body: bytes


class AgentTransport:
    """One persistent connection; not thread-safe (the exporter serializes calls)."""

    def __init__(self, endpoint: Endpoint, max_response: int = 1 << 20) -> None:
        self.endpoint = endpoint
        self._max_response = max_response
        self._conn: Optional[_Connection] = None
        self._pid = os.getpid()

    def _connection(self, timeout: float) -> "_Connection":
        if self._conn is not None and self._pid != os.getpid():
            # a forked child must not share the parent's socket: drop it without closing it
            self._conn = None
        if self._conn is None:
            self._pid = os.getpid()
            endpoint = self.endpoint
            if endpoint.scheme == "unix":
                self._conn = _UnixHTTPConnection(endpoint.host, timeout)
            elif endpoint.scheme == "https":
                self._conn = _TLSHTTPConnection(endpoint.host, endpoint.port, timeout=timeout)
            else:
                self._conn = _TCPHTTPConnection(endpoint.host, endpoint.port, timeout=timeout)
        conn = self._conn
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn

    def request(self, method: str, path: str, body: bytes, headers: Dict[str, str],
                timeout: float) -> Response:
        """Send one request; raises OSError / http.client.HTTPException on transport failure.

        A keep-alive connection the server closed while idle fails on first use: that case is
        retried once on a fresh connection when nothing of the response was read.
        """
        for attempt in (0, 1):
            conn = self._connection(timeout)
            reused = conn.sock is not None
            try:
                conn._hold_next = bool(body)  # header block and body in one send
                conn.request(method, path, body=body, headers=headers)
                conn.flush_held()
                response = conn.getresponse()
                data = response.read(self._max_response)
                if not response.isclosed():
                    # drain what we did not want, so the connection can be reused
                    while response.read(65536):
                        pass
                if response.will_close:
                    self.close()
                return Response(response.status, data)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as error:
                self.close()
                if not reused or attempt:
                    raise error
            except BaseException:
                self.close()
                raise
        raise ConnectionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass


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

