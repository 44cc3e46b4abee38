"""A keep-alive HTTP connection to the Datadog Agent (or the Lambda extension): http, https, unix.

One request at a time, under the exporter's lock, with a minimal HTTP/1.1 client (Content-Length,
chunked and close-delimited responses, 1xx skipped, ``Connection: close`` honoured). Header and
body go out in a single ``send`` (and TCP_NODELAY is set), because a separate small write followed
by the body waits for the peer's delayed ACK under Nagle's algorithm: ~40 ms per request.

Every exchange runs against one wall-clock deadline (connect, TLS handshake, send and every read
share it), so an agent that drips bytes, never answers or streams an endless body costs at most
that deadline. Response bodies are kept up to ``max_response`` bytes (64 KiB): beyond that the
connection is dropped instead of read to the end.
"""

from __future__ import annotations

import select
import socket
import time
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple, Union
from urllib.parse import unquote, urlsplit

from otel_dd_lambda import config

DEFAULT_URL = "http://127.0.0.1:8126"
# The agent answers a few hundred bytes (``rate_by_service``); anything larger is not worth the
# time or memory: the status line says what happened.
MAX_RESPONSE = 64 * 1024
_MAX_INTERIM = 8  # 1xx responses skipped before the real one; more is not an HTTP server
_MAX_LINE = 1024  # a chunk-size line
# The fast path's non-blocking send and recv on a socket left in blocking mode (Linux, macOS);
# without the flag or poll(), every exchange takes the general path.
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0) if hasattr(select, "poll") else 0


class DeadlineExceeded(TimeoutError):
    """The exchange reached its deadline (the agent is slow, dripping or not answering)."""


def _time_left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlineExceeded("export deadline reached")
    return left


class Endpoint:
    """Where the agent listens. A slotted class, not a ``NamedTuple``: building a NamedTuple class
    costs ~0.7 M instructions at every cold start (its annotations compiled as forward references)."""

    __slots__ = ("scheme", "host", "port")

    def __init__(self, scheme: str, host: str, port: int) -> None:
        self.scheme = scheme  # "http", "https" or "unix"
        self.host = host  # host name, or the socket path for unix
        self.port = port

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Endpoint) and (self.scheme, self.host, self.port) == (
            other.scheme, other.host, other.port)

    def __hash__(self) -> int:  # a value, as the NamedTuple it replaces
        return hash((self.scheme, self.host, self.port))

    def __repr__(self) -> str:
        return "Endpoint(scheme=%r, host=%r, port=%r)" % (self.scheme, self.host, self.port)

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


def resolve_endpoint(agent_url: Optional[str] = None,
                     settings: Optional[config.ExporterSettings] = None) -> Endpoint:
    """``agent_url``, else ``DD_TRACE_AGENT_URL``, else ``DD_AGENT_HOST``+``DD_TRACE_AGENT_PORT``
    (read from ``settings``, by default the environment now)."""
    if settings is None:
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

    __slots__ = ("endpoint", "sock", "host_header", "poller", "address")

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.sock: Any = None
        # getaddrinfo() encodes a str host with the IDNA codec, whose first use imports
        # encodings.idna, stringprep and unicodedata (~5 M instructions of a cold start): an
        # ASCII host, every agent address in practice, goes as bytes and resolves the same
        host = endpoint.host
        self.address: Tuple[Union[str, bytes], int] = (host.encode("ascii") if host.isascii() else host,
                                                        endpoint.port)
        # a plain (not TLS) socket's readiness, for the fast path; None: general path only
        self.poller: Any = None
        if endpoint.scheme == "unix":
            self.host_header = "localhost"
        else:
            default = 443 if endpoint.scheme == "https" else 80
            host = "[%s]" % endpoint.host if ":" in endpoint.host else endpoint.host
            self.host_header = host if endpoint.port == default else "%s:%d" % (host, endpoint.port)

    def connect(self, deadline: float) -> None:
        endpoint = self.endpoint
        if endpoint.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(_time_left(deadline))
                sock.connect(endpoint.host)
            except BaseException:
                sock.close()
                raise
        else:
            # (name resolution itself cannot be bounded; the agent is normally an IP literal)
            try:
                # (typeshed allows str hosts only; CPython's getaddrinfo takes bytes too)
                sock = socket.create_connection(self.address, _time_left(deadline))  # type: ignore[arg-type]
            except socket.timeout:
                raise DeadlineExceeded("connect timed out") from None
            _nodelay(sock)
            if endpoint.scheme == "https":
                import ssl  # only for https: ~5 ms of import the extension (http) never needs

                try:
                    sock = ssl.create_default_context().wrap_socket(
                        sock, server_hostname=endpoint.host, do_handshake_on_connect=False)
                    # the whole handshake is bounded by the socket timeout (one deadline in _ssl)
                    sock.settimeout(_time_left(deadline))
                    sock.do_handshake()
                except BaseException:
                    sock.close()
                    raise
        if _DONTWAIT and endpoint.scheme != "https":
            # blocking mode: the fast path's send and recv carry MSG_DONTWAIT and its one poll()
            # waits for the answer, so no settimeout (a syscall) nor the socket module's own
            # poll() before each call; the general path sets a timeout before every call
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            sock.settimeout(None)
            self.poller = poller
        self.sock = sock

    def close(self) -> None:
        sock, self.sock, self.poller = self.sock, None, None
        if sock is not None:
            sock.close()


# ``(status, body, complete)``: at most max_response bytes of the body; complete is False when
# the deadline came while the body was still arriving. A plain tuple: a NamedTuple's
# constructor is a Python call, a tenth of the fast path's instructions. The alias is for
# annotations only (subscripting a typing generic at import costs cold-start time).
if TYPE_CHECKING:
    Response = Tuple[int, bytes, bool]


_MAX_HEADER = 64 * 1024


class _Reader:
    """``recv`` under the exchange's deadline: each call waits at most for the time left."""

    __slots__ = ("sock", "deadline")

    def __init__(self, sock: Any, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline

    def recv(self, size: int) -> bytes:
        sock = self.sock
        sock.settimeout(_time_left(self.deadline))
        try:
            return sock.recv(size)
        except socket.timeout:
            raise DeadlineExceeded("no answer before the deadline") from None


def _whole_answer(data: bytes, max_response: int) -> Optional[bytes]:
    """The body when ``data`` is one whole ordinary 200 answer, else None.

    The fast path's parse, in a dozen C calls rather than ``_read_response``'s Python loops:
    HTTP/1.1 200, a single Content-Length with exactly that many bytes after the header, no
    Transfer-Encoding, no Connection header. Whatever else, even when valid, is left to
    ``_read_response`` with the same bytes, so both give the same result.
    """
    if not data.startswith(b"HTTP/1.1 200 "):
        return None
    end = data.find(b"\r\n\r\n")
    head = data[12:end].lower()
    at = head.find(b"\r\ncontent-length:") + 17
    if end < 0 or at < 17 or head.count(b"content-length") != 1 or b"transfer-encoding" in head \
            or b"connection" in head:
        return None
    line_end = head.find(b"\r\n", at)
    try:
        length = int(head[at:] if line_end < 0 else head[at:line_end])
    except ValueError:
        return None
    body = data[end + 4:]
    if len(body) != length or length > max_response:
        return None
    return body


def _read_head(recv: Any, buf: bytes = b"") -> Tuple[str, int, List[str], bytes]:
    """``(version, status, header lines, bytes after the header)`` of the final response, 1xx
    interim responses skipped; ``buf``: what was received already."""
    for _ in range(_MAX_INTERIM + 1):
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
        if not 100 <= status < 200:
            return status_line[0], status, head[1:], rest
        buf = rest  # 100 Continue and friends: the real answer follows
    raise ProtocolError("too many interim responses")


def _framing(lines: List[str]) -> Tuple[str, str, Optional[str]]:
    """``(connection, transfer-encoding, content-length)``, lower-cased where it matters: the
    only headers that matter; a repeated one counts with its last value."""
    connection = transfer_encoding = ""
    length_text = None
    for line in lines:
        key, sep, value = line.partition(":")
        if sep:
            key = key.strip().lower()
            if key == "content-length":
                length_text = value.strip()
            elif key == "connection":
                connection = value.strip()
            elif key == "transfer-encoding":
                transfer_encoding = value.strip()
    return connection.lower(), transfer_encoding.lower(), length_text


def _content_length(text: str) -> int:
    try:
        length = int(text)
        if length < 0:
            raise ValueError
    except ValueError:
        raise ProtocolError("bad Content-Length %r" % text[:40]) from None
    return length


def _read_response(recv: Any, max_response: int, received: bytes = b"") -> Tuple[int, bytes, bool, bool]:
    """``(status, body, will_close, complete)`` of one HTTP/1.x response (``received``: its
    first bytes, already read).

    ``body`` holds at most ``max_response`` bytes; a longer body is not read to its end
    (``will_close``: the connection is dropped with the rest). The deadline reached inside the
    body gives ``complete=False`` with the status known: what the agent decided is not lost.
    """
    version, status, lines, rest = _read_head(recv, received)
    connection, transfer_encoding, length_text = _framing(lines)
    will_close = "close" in connection or (version == "HTTP/1.0" and "keep-alive" not in connection)
    if status in (204, 304):
        return status, b"", will_close, True
    parts: List[bytes] = []
    try:
        if "chunked" in transfer_encoding:
            read_whole = _read_chunked(recv, rest, parts, max_response)
        elif length_text is None:  # delimited by the end of the connection
            will_close = True
            read_whole = _read_upto(recv, rest, parts, max_response, None)
        else:
            read_whole = _read_upto(recv, rest, parts, max_response, _content_length(length_text))
    except DeadlineExceeded:
        return status, b"".join(parts)[:max_response], True, False
    return status, b"".join(parts)[:max_response], will_close or not read_whole, True


def _read_upto(recv: Any, buf: bytes, parts: List[bytes], limit: int, length: Optional[int]) -> bool:
    """Body bytes into ``parts``: ``length`` of them (None: up to the end of the connection),
    at most ``limit``. True when the whole body was read."""
    size = len(buf)
    parts.append(buf)
    if length is not None and size >= length:
        parts[-1] = buf[:length]
        return True
    while size < limit:
        want = limit - size if length is None else min(limit, length) - size
        if want <= 0:
            break
        data = recv(min(65536, want))
        if not data:
            if length is None:
                return True
            raise ProtocolError("connection closed inside the response body")
        parts.append(data)
        size += len(data)
        if length is not None and size >= length:
            return True
    return False  # over the limit: the rest goes with the connection


def _read_line(recv: Any, buf: bytes, limit: int, what: str) -> Optional[Tuple[bytes, bytes]]:
    """``(line, rest)`` of the CRLF-terminated line at the start of ``buf``, reading more as
    needed (a line over ``limit`` bytes is a protocol error); None if the connection ends first."""
    eol = buf.find(b"\r\n")
    while eol < 0:
        if len(buf) > limit:
            raise ProtocolError(what + " too long")
        data = recv(65536)
        if not data:
            return None
        buf += data
        eol = buf.find(b"\r\n")
    return buf[:eol], buf[eol + 2:]


def _chunk_size(line: bytes) -> int:
    try:
        size = int(line.split(b";", 1)[0].strip(), 16)
        if size < 0:
            raise ValueError
    except ValueError:
        raise ProtocolError("bad chunk size") from None
    return size


def _read_trailers(recv: Any, buf: bytes) -> bool:
    """Trailers up to the empty line (bounded like a header block); True when the connection
    can be reused (it ended there, nothing after the body)."""
    while True:
        read = _read_line(recv, buf, _MAX_HEADER, "chunked trailers")
        if read is None:
            return False
        line, buf = read
        if not line:
            return not buf  # bytes after the body: the connection is not reusable


def _read_chunked(recv: Any, buf: bytes, parts: List[bytes], limit: int) -> bool:
    """A chunked body into ``parts`` (at most ``limit`` bytes); True when read to its end."""
    kept = 0
    while True:
        read = _read_line(recv, buf, _MAX_LINE, "chunk size line")
        if read is None:
            raise ProtocolError("connection closed inside a chunked body")
        line, buf = read
        size = _chunk_size(line)
        if size == 0:
            return _read_trailers(recv, buf)
        if kept + size > limit:
            parts.append(buf[:limit - kept])
            return False  # a body over the bound: dropped with the connection
        while len(buf) < size + 2:
            data = recv(65536)
            if not data:
                raise ProtocolError("connection closed inside a chunk")
            buf += data
        parts.append(buf[:size])
        kept += size
        buf = buf[size + 2:]


class AgentTransport:
    """One persistent connection; not thread-safe (the exporter serializes calls).

    A small HTTP/1.1 client of its own rather than ``http.client``: the request (header block and
    body) leaves in one ``sendall`` and the answer is read with one ``recv`` in the usual case,
    without ``http.client``'s e-mail header parser (~100 µs per request) or its import of
    ``ssl`` and ``email`` at cold start (~10 ms). TLS is used only for ``https://`` endpoints.

    The usual exchange (plain socket, the request taken whole by the kernel, the whole answer in
    one ``recv``, parsed by ``_whole_answer``) costs one send, one poll and one recv; anything else
    continues on the general path from where it stands.

    Not fork-aware: a forked child must not use its parent's sockets, so whoever keeps one across
    a fork replaces it in the child (``DatadogSpanExporter`` does, from an ``os.register_at_fork``
    hook) rather than every request asking for the process id.

    ``probe`` keeps a second, separate connection: a small request left outstanding while the
    agent does not answer, so that asking again costs a look at the socket, not a wait.
    """

    def __init__(self, endpoint: Endpoint, max_response: int = MAX_RESPONSE) -> None:
        self.endpoint = endpoint
        self._max_response = max_response
        self._conn: Optional[_Connection] = None
        self._request_line: Tuple[str, str, bytes] = ("", "", b"")  # last (method, path, encoded)
        self._probe: Optional[_Connection] = None
        self._probe_buf = b""
        self._probe_started = 0.0

    def _connection(self) -> _Connection:
        conn = self._conn
        if conn is None:
            conn = self._conn = _Connection(self.endpoint)
        return conn

    def _head(self, method: str, path: str, host_header: str) -> bytes:
        # the request line and Host depend only on the endpoint: encoded once
        line = self._request_line
        if line[0] != method or line[1] != path:
            line = self._request_line = (method, path, (
                "%s %s HTTP/1.1\r\nHost: %s\r\n" % (method, path, host_header)).encode("latin-1"))
        return line[2]

    def _send_all(self, sock: Any, data: Union[bytes, memoryview], deadline: float) -> None:
        sock.settimeout(_time_left(deadline))
        try:
            if self.endpoint.scheme != "https":
                sock.sendall(data)  # the timeout bounds the whole sendall (Python >= 3.5)
                return
            # ssl's sendall restarts the timeout for every piece: one piece per deadline check
            view = memoryview(data)
            while view:
                sent = sock.send(view)
                view = view[sent:]
                if view:
                    sock.settimeout(_time_left(deadline))
        except socket.timeout:
            raise DeadlineExceeded("the agent stopped reading the request") from None

    def connect(self, deadline: float) -> None:
        """Open the connection now unless one is open: a refused agent fails here, before the
        caller builds a request body."""
        conn = self._connection()
        if conn.sock is None:
            try:
                conn.connect(deadline)
            except BaseException:
                self.close()
                raise

    def request(self, method: str, path: str, body: bytes, headers: Union[Dict[str, str], bytes],
                deadline: float) -> Response:
        """Send one request and read the answer, all before ``deadline`` (``time.monotonic()``).

        Raises OSError on transport failure (refused, reset, not HTTP), ``DeadlineExceeded`` (a
        ``TimeoutError``) when the deadline comes before the status line. ``headers`` is a dict,
        or the header lines already encoded (``encode_headers``): the exporter sends the same
        ones on every request.

        A keep-alive connection the server closed while idle fails on first use: that case is
        retried once on a fresh connection when nothing of the response was read.
        """
        block = headers if isinstance(headers, bytes) else encode_headers(headers)
        tail = b"Content-Length: %d\r\n\r\n" % len(body)
        reused = self._conn is not None and self._conn.sock is not None
        try:
            return self._exchange(method, path, block, tail, body, deadline)
        except (RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            if not reused:
                raise
        # the idle keep-alive connection was closed by the server: once more, on a new one
        return self._exchange(method, path, block, tail, body, deadline)

    def _exchange(self, method: str, path: str, block: bytes, tail: bytes, body: bytes,
                  deadline: float) -> Response:
        """One request and its answer on the current connection (opened if needed); the
        connection is closed on any failure or when the answer says so."""
        conn = self._connection()
        try:
            if conn.sock is None:
                conn.connect(deadline)
            sock = conn.sock
            # header block and body in one send: a separate small write waits for the
            # peer's delayed ACK under Nagle's algorithm (~40 ms per request)
            request = b"".join((self._head(method, path, conn.host_header), block, tail, body))
            poller = conn.poller
            if poller is None:
                self._send_all(sock, request, deadline)
                received: Optional[bytes] = b""
            else:
                received = self._send_recv_fast(sock, poller, request, deadline)
                if received is not None:
                    answer = _whole_answer(received, self._max_response)
                    if answer is not None:
                        return 200, answer, True
            # the general path, from the bytes already read; it sets a timeout before every call
            status, data, will_close, complete = _read_response(_Reader(sock, deadline).recv,
                                                                self._max_response, received or b"")
            if poller is not None:
                sock.settimeout(None)  # back to the fast path's blocking mode
        except BaseException:
            self.close()
            raise
        if will_close or not complete:
            self.close()
        return status, data, complete

    def _send_recv_fast(self, sock: Any, poller: Any, request: bytes, deadline: float) -> Optional[bytes]:
        """The fast path's send (non-blocking; what the kernel did not take goes out on the
        general path), one poll() bounded by the deadline and one non-blocking recv; None when
        nothing came after all (the general path waits again)."""
        if deadline <= time.monotonic():
            raise DeadlineExceeded("export deadline reached")  # nothing sent, as on the general path
        try:
            sent = sock.send(request, _DONTWAIT)
        except BlockingIOError:
            sent = 0
        if sent < len(request):
            self._send_all(sock, memoryview(request)[sent:], deadline)
            sock.settimeout(None)
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(int(left * 1000.0) + 1):  # ms rounded up, as the socket module does
            raise DeadlineExceeded("no answer before the deadline")
        try:
            return sock.recv(65536, _DONTWAIT)
        except BlockingIOError:
            return None

    def probe(self, method: str, path: str, body: bytes, headers: bytes, wait: float,
              max_age: float) -> bool:
        """Whether the agent answers a small request; True once it has (any HTTP status).

        A new probe waits up to ``wait`` seconds for the status line. Unanswered, it stays
        outstanding and the next calls only look (without waiting) whether the answer has come,
        until it is ``max_age`` seconds old and a new one replaces it. Raises OSError when the
        agent refuses or drops the connection (it is down rather than hung).
        """
        now = time.monotonic()
        if self._probe is not None and now - self._probe_started > max_age:
            self.drop_probe()
        deadline = now  # asked before: look, do not wait
        if self._probe is None:
            deadline = now + max(0.0, wait)
            conn = _Connection(self.endpoint)
            try:
                conn.connect(deadline)
                self._send_all(conn.sock, b"".join((
                    self._head(method, path, conn.host_header), headers,
                    b"Content-Length: %d\r\n\r\n" % len(body), body)), deadline)
            except BaseException:
                conn.close()
                raise
            self._probe, self._probe_buf, self._probe_started = conn, b"", now
        sock = self._probe.sock
        try:
            while True:
                left = deadline - time.monotonic()
                sock.settimeout(left if left > 0 else 0.0)  # 0: non-blocking
                try:
                    data = sock.recv(4096)
                except (BlockingIOError, socket.timeout):
                    return False
                except OSError as error:
                    if type(error).__name__ == "SSLWantReadError":
                        return False
                    raise
                if not data:
                    raise RemoteDisconnected("the agent closed the probe connection")
                buf = self._probe_buf = self._probe_buf + data
                if b"\r\n" in buf:
                    if not buf.startswith(b"HTTP/1."):
                        raise ProtocolError("bad status line %r" % buf[:80])
                    self.drop_probe()
                    return True
                if len(buf) > _MAX_HEADER:
                    raise ProtocolError("response header too long")
        except BaseException:
            self.drop_probe()
            raise

    @property
    def probing(self) -> bool:
        return self._probe is not None

    def drop_probe(self) -> None:
        probe, self._probe, self._probe_buf = self._probe, None, b""
        if probe is not None:
            try:
                probe.close()
            except Exception:
                pass

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

