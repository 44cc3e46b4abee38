"""``DatadogSpanExporter``: OTel spans to the Datadog Agent / Lambda extension, or to stdout.

Two modes:

``agent``
    ``PUT /v0.4/traces`` (or ``/v0.5/traces``) msgpack over one keep-alive connection to
    ``agent_url``, else ``DD_TRACE_AGENT_URL`` (``http://``, ``https://``, ``unix://``), else
    ``DD_AGENT_HOST`` + ``DD_TRACE_AGENT_PORT``, else ``http://127.0.0.1:8126`` (the Datadog
    Lambda extension listens there).
``log``
    One JSON line per flush, ``{"traces": [[span, ...], ...]}``, on stdout, for the Datadog
    Forwarder (Lambda without the extension). Ids are 16 upper-case hex digits as ddtrace's
    log writer prints them; a line longer than ``max_log_line`` is split in several lines.

The mode is the ``mode`` argument, else ``OTEL_DD_LAMBDA_EXPORT_MODE`` (``agent``, ``log`` or
``auto``), else ``log`` if ``DD_FLUSH_TO_LOG`` is true (datadog_lambda's switch), else ``auto``:
``log`` when running in Lambda (``AWS_LAMBDA_FUNCTION_NAME``) with no
Datadog extension (``/opt/extensions/datadog-agent`` absent) and no agent configured (no
``agent_url``, ``DD_TRACE_AGENT_URL`` or ``DD_AGENT_HOST``) — ddtrace makes the same choice —
``agent`` otherwise.

Failures never reach the caller:

* 2xx: sent. 400 (and other 4xx): the payload is dropped, one error log.
* 413: the payload is split in halves and resent (a lone span that is still too large is dropped).
* 408, 429, 5xx, refused / reset connections, timeouts: retried with exponential backoff, at most
  ``max_attempts`` times (once, until the agent answers again, after a flush that gave up) and
  never past the caller's deadline (``force_flush(timeout_millis)``,
  or ``timeout`` seconds for ``export``); what is still unsent then waits in a bounded buffer for
  the next flush, the oldest spans dropped (and counted) first.

Payloads stay under ``max_payload_size`` bytes (default 5 MiB; the extension accepts 10 MiB).
The exporter is thread-safe and fork-safe (a child starts with an empty buffer and a new socket).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import weakref
from collections import deque
from typing import IO, Any, Deque, Dict, List, Mapping, Optional, Sequence

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_dd_lambda.exporters.encoding import (
    Payload,
    V04Encoder,
    V05Encoder,
    encode_log_lines,
    load_msgpack,
    split_chunk,
)
from otel_dd_lambda.exporters.mapping import Chunk, SpanMapper
from otel_dd_lambda.exporters.transport import (
    AgentTransport,
    Endpoint,
    encode_headers,
    parse_response_rates,
    resolve_endpoint,
)
from otel_dd_lambda import config
from otel_dd_lambda._version import __version__

logger = logging.getLogger(__name__)

MODE_ENV = "OTEL_DD_LAMBDA_EXPORT_MODE"
EXTENSION_PATH = "/opt/extensions/datadog-agent"
DEFAULT_MAX_PAYLOAD = 5 * 1024 * 1024
DEFAULT_MAX_LOG_LINE = 250 * 1024  # CloudWatch Logs caps one event at 256 KiB
_RETRYABLE = frozenset((408, 429))
_INTERPRETERS = {"cpython": "CPython", "pypy": "PyPy"}


def resolve_mode(mode: Optional[str], agent_url: Optional[str]) -> str:
    """``agent`` or ``log`` (see the module docstring)."""
    settings = config.exporter_settings()
    chosen = (mode or settings.export_mode).strip().lower()
    if chosen in ("agent", "log"):
        return chosen
    if settings.flush_to_log:
        return "log"  # datadog_lambda's switch for "write to the logs, no extension"
    if chosen != "auto":
        logger.warning("unknown export mode %r, using auto", chosen)
    agent_configured = bool(agent_url or settings.agent_url or settings.agent_host)
    if settings.in_lambda and not agent_configured and not os.path.exists(EXTENSION_PATH):
        return "log"
    return "agent"


class DatadogSpanExporter(SpanExporter):
    """An OTel ``SpanExporter`` writing Datadog traces; constructible with no arguments."""

    def __init__(
        self,
        agent_url: Optional[str] = None,
        *,
        mode: Optional[str] = None,
        api_version: str = "v0.4",
        timeout: float = 3.0,
        max_payload_size: int = DEFAULT_MAX_PAYLOAD,
        max_buffered_spans: int = 5_000,
        max_attempts: int = 4,
        backoff: float = 0.05,
        service: Optional[str] = None,
        env: Optional[str] = None,
        version: Optional[str] = None,
        native_span_events: Optional[bool] = None,
        headers: Optional[Mapping[str, str]] = None,
        out: Optional[IO[str]] = None,
        max_log_line: int = DEFAULT_MAX_LOG_LINE,
    ) -> None:
        self.mode = resolve_mode(mode, agent_url)
        self.endpoint: Endpoint = resolve_endpoint(agent_url)
        if api_version not in ("v0.4", "v0.5"):
            logger.warning("unsupported Datadog API version %r, using v0.4", api_version)
            api_version = "v0.4"
        self.api_version = api_version
        self._encoder = V05Encoder() if api_version == "v0.5" else V04Encoder()
        if self.mode == "agent":
            load_msgpack()  # now, at init, rather than during the first invocation's flush
        if native_span_events is None:
            native_span_events = config.exporter_settings().native_span_events
        # native span events only exist in v0.4; elsewhere they travel as the "events" tag
        native = bool(native_span_events) and api_version == "v0.4" and self.mode == "agent"
        self._mapper = SpanMapper(service=service, env=env, version=version, native_span_events=native)
        # one count and one warning per cause, whether the mapping or the encoder cut the span
        self.limits = self._encoder.limits = self._mapper.limits
        self.timeout = max(0.0, float(timeout))
        self.max_payload_size = max(1024, int(max_payload_size))
        self.max_buffered_spans = max(0, int(max_buffered_spans))
        self.max_attempts = max(1, int(max_attempts))
        self.backoff = max(0.0, float(backoff))
        # Set when a flush gave up on an unavailable agent: later flushes try once, without
        # backoff sleeps, until the agent answers again, so a missing agent costs each
        # invocation one connection attempt rather than the whole retry schedule.
        self._agent_unavailable = False
        self.max_log_line = max(1024, int(max_log_line))
        self._out = out
        self._extra_headers = dict(headers or {})
        self._headers: Optional[Dict[str, str]] = None
        self._encoded_headers: Optional[bytes] = None
        self._rates_body: Optional[bytes] = None  # the agent's last 2xx body, already parsed
        self._transport = AgentTransport(self.endpoint)
        self._send_lock = threading.Lock()  # one request at a time on the connection
        self._buffer_lock = threading.Lock()  # guards _buffer and the counters
        self._buffer: Deque[Chunk] = deque()
        self._buffered_spans = 0
        self._shutdown = False
        self.rate_by_service: Dict[str, float] = {}
        # counters, for tests and for whoever wants to report them
        self.sent_spans = 0
        self.dropped_spans = 0  # evicted from a full buffer, or unsendable after shutdown
        self.rejected_spans = 0  # refused by the agent (400 and such)
        self._log_times: Dict[str, float] = {}
        _register_fork_hook(self)

    # ------------------------------------------------------------ SpanExporter

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        return self.export_until(spans, time.monotonic() + self.timeout)

    def export_until(self, spans: Sequence[Any], deadline: float) -> SpanExportResult:
        """Export ``spans`` (and anything buffered) before ``deadline`` (``time.monotonic()``)."""
        try:
            if self._shutdown:
                self._count_dropped(len(spans))
                return SpanExportResult.FAILURE
            chunks = self._mapper.map_chunks(spans) if spans else []
            return SpanExportResult.SUCCESS if self._flush(chunks, deadline) else SpanExportResult.FAILURE
        except Exception:  # never into user code
            logger.exception("Datadog export failed")
            return SpanExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Send what the buffer holds within ``timeout_millis``; True when nothing is left."""
        try:
            return self._flush([], time.monotonic() + max(0, timeout_millis) / 1000.0)
        except Exception:
            logger.exception("Datadog flush failed")
            return False

    def shutdown(self) -> None:
        try:
            if self._shutdown:
                return
            self._flush([], time.monotonic() + self.timeout)
            self._shutdown = True
            with self._buffer_lock:
                if self._buffered_spans:
                    self._count_dropped(self._buffered_spans, locked=True)
                    self._buffer.clear()
                    self._buffered_spans = 0
            self._transport.close()
        except Exception:
            logger.exception("Datadog exporter shutdown failed")

    # ------------------------------------------------------------ state

    @property
    def buffered_spans(self) -> int:
        return self._buffered_spans

    def stats(self) -> Dict[str, int]:
        return {
            "sent_spans": self.sent_spans,
            "buffered_spans": self._buffered_spans,
            "dropped_spans": self.dropped_spans,
            "rejected_spans": self.rejected_spans,
            "oversized_spans": self._encoder.dropped_spans,
        }

    # ------------------------------------------------------------ internals

    def _flush(self, chunks: List[Chunk], deadline: float) -> bool:
        """True when every span given or buffered was delivered (or deliberately dropped)."""
        remaining = deadline - time.monotonic()
        if not self._send_lock.acquire(timeout=remaining if remaining > 0 else 0):
            # another thread is sending and the caller cannot wait: keep for the next flush
            self._keep(chunks)
            return False
        try:
            with self._buffer_lock:
                if self._buffer:
                    chunks = list(self._buffer) + chunks
                    self._buffer.clear()
                    self._buffered_spans = 0
            if not chunks:
                return True
            if self.mode == "log":
                self._write_log(chunks)
                return True
            unsent = self._send(chunks, deadline)
            if unsent:
                self._keep(unsent)
                return False
            return True
        finally:
            self._send_lock.release()

    def _keep(self, chunks: List[Chunk]) -> None:
        """Buffer ``chunks`` behind anything older; evict the oldest beyond the bound."""
        if not chunks:
            return
        with self._buffer_lock:
            self._buffer.extend(chunks)
            self._buffered_spans += sum(len(c) for c in chunks)
            evicted = 0
            while self._buffered_spans > self.max_buffered_spans and self._buffer:
                oldest = self._buffer.popleft()
                self._buffered_spans -= len(oldest)
                evicted += len(oldest)
            if evicted:
                self._count_dropped(evicted, locked=True)
                self._log_limited("evict", logging.WARNING,
                                  "Datadog exporter buffer full: dropped %d oldest spans", evicted)

    def _count_dropped(self, count: int, locked: bool = False) -> None:
        if locked:
            self.dropped_spans += count
        else:
            with self._buffer_lock:
                self.dropped_spans += count

    def _log_limited(self, key: str, level: int, message: str, *args: Any) -> None:
        """At most one log line per kind of problem per minute (Lambda bills log volume)."""
        now = time.monotonic()
        last = self._log_times.get(key)
        if last is None or now - last >= 60.0:
            self._log_times[key] = now
            logger.log(level, message, *args)

    def _request_headers(self, trace_count: int) -> Dict[str, str]:
        if self._headers is None:
            info = sys.version_info
            self._headers = {
                "Content-Type": self._encoder.content_type,
                "Datadog-Meta-Lang": "python",
                "Datadog-Meta-Lang-Version": "%d.%d.%d" % (info[0], info[1], info[2]),
                "Datadog-Meta-Lang-Interpreter": _INTERPRETERS.get(
                    sys.implementation.name, sys.implementation.name),
                "Datadog-Meta-Tracer-Version": __version__,
                "Datadog-Send-Real-Http-Status": "1",
            }
            self._headers.update(self._extra_headers)
        headers = dict(self._headers)
        headers["X-Datadog-Trace-Count"] = str(trace_count)
        return headers

    def _request_head(self, trace_count: int) -> Any:
        """``_request_headers`` encoded for the wire: the fixed lines are encoded once."""
        fixed = self._encoded_headers
        if fixed is None:
            headers = self._request_headers(trace_count)
            if "X-Datadog-Trace-Count" in self._headers:  # set by the caller: keep its place
                return headers
            try:
                fixed = self._encoded_headers = encode_headers(self._headers)
            except UnicodeEncodeError:  # the transport reports it, as for any request
                return headers
        return fixed + b"X-Datadog-Trace-Count: %d\r\n" % trace_count

    def _send(self, chunks: List[Chunk], deadline: float) -> List[Chunk]:
        """Deliver ``chunks``; returns those left unsent by retryable failures."""
        encoder = self._encoder
        queue: Deque[Payload] = deque(encoder.payloads(chunks, self.max_payload_size))
        while queue:
            payload = queue.popleft()
            outcome = self._send_payload(payload, deadline)
            if outcome == "sent":
                self.sent_spans += payload.span_count
            elif outcome == "split":
                halves = self._split(payload)
                if halves is None:
                    self.rejected_spans += payload.span_count
                    self._log_limited("413", logging.ERROR,
                                      "Datadog agent refused a payload as too large (%d bytes, "
                                      "%d spans): dropped", len(payload.body), payload.span_count)
                else:
                    queue.extendleft(reversed(halves))
            elif outcome == "rejected":
                self.rejected_spans += payload.span_count
            else:  # retry later: the agent is unavailable, keep this and everything after it
                unsent = list(payload.chunks)
                for rest in queue:
                    unsent.extend(rest.chunks)
                return unsent
        return []

    def _split(self, payload: Payload) -> Optional[List[Payload]]:
        """Halves of a payload the agent found too large (413), or None for a lone span."""
        if payload.span_count <= 1:
            return None
        chunks = payload.chunks
        if len(chunks) > 1:
            middle = len(chunks) // 2
            groups = [chunks[:middle], chunks[middle:]]
        else:
            groups = [[half] for half in split_chunk(chunks[0])]
        return [part for group in groups for part in self._encoder.payloads(group, len(payload.body))]

    def _send_payload(self, payload: Payload, deadline: float) -> str:
        """``sent``, ``split`` (413), ``rejected`` (dropped) or ``retry`` (keep for later)."""
        headers = self._request_head(len(payload.chunks))
        path = self._encoder.path
        delay = self.backoff
        attempts = 1 if self._agent_unavailable else self.max_attempts
        for attempt in range(attempts):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                response = self._transport.request("PUT", path, payload.body, headers, remaining)
            except Exception as error:  # refused, reset, timeout, garbage status line...
                self._log_limited("conn", logging.WARNING,
                                  "Datadog agent at %s unreachable (%s): will retry",
                                  self.endpoint.url, error.__class__.__name__)
            else:
                status = response.status
                self._agent_unavailable = False  # it answered: full retries again
                if 200 <= status < 300:
                    body = response.body
                    # the agent nearly always answers the same rates: parse only a new body
                    if body != self._rates_body:
                        rates = parse_response_rates(body)
                        if rates is not None:
                            self.rate_by_service = rates
                        self._rates_body = body
                    return "sent"
                if status == 413:
                    return "split"
                if status not in _RETRYABLE and status < 500:
                    logger.error(
                        "Datadog agent rejected a trace payload (HTTP %d, %d spans): dropped; %s",
                        status, payload.span_count, response.body[:200].decode("utf-8", "replace"))
                    return "rejected"
                self._log_limited("status", logging.WARNING,
                                  "Datadog agent answered HTTP %d: will retry", status)
            if attempt + 1 >= attempts:
                break
            remaining = deadline - time.monotonic()
            if remaining <= delay:
                break  # no time left for a useful retry
            time.sleep(delay)
            delay *= 2
        self._agent_unavailable = True
        return "retry"

    def _write_log(self, chunks: List[Chunk]) -> None:
        lines, dropped = encode_log_lines(chunks, self.max_log_line, self.limits)
        if dropped:
            self.rejected_spans += dropped
        out = self._out if self._out is not None else sys.stdout
        try:
            # one write per line: Lambda turns every stdout write into log events
            for line in lines:
                out.write(line + "\n")
            out.flush()
            self.sent_spans += sum(len(c) for c in chunks) - dropped
        except Exception as error:
            self._count_dropped(sum(len(c) for c in chunks))
            self._log_limited("log", logging.WARNING, "could not write traces to stdout: %s", error)

    def _after_fork_in_child(self) -> None:
        # the parent's buffered spans are the parent's to send; its locks may be held forever
        self._send_lock = threading.Lock()
        self._buffer_lock = threading.Lock()
        self._buffer = deque()
        self._buffered_spans = 0
        self._transport = AgentTransport(self.endpoint)


def _register_fork_hook(exporter: DatadogSpanExporter) -> None:
    if not hasattr(os, "register_at_fork"):
        return
    ref = weakref.WeakMethod(exporter._after_fork_in_child)

    def hook() -> None:
        method = ref()
        if method is not None:
            method()

    os.register_at_fork(after_in_child=hook)
