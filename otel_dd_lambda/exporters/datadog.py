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
* 408, 429, 5xx, refused / reset connections: on the invocation's path (``export_until``,
  ``force_flush``) one attempt, no backoff sleep: the next flush retries. The SDK's ``export``
  (a background thread) retries with exponential backoff, at most ``max_attempts`` times (once,
  until the agent answers again, after a flush that gave up).
* Every flush has one wall-clock deadline for all of it (connect, send, every read): the
  caller's, capped at ``timeout`` (``OTEL_DD_LAMBDA_FLUSH_TIMEOUT_MS``, default 1 s). When it is
  reached with the agent silent, later flushes do not wait on it again: one small probe request
  is left outstanding and looked at, and the buffer is delivered once the agent answers.
* What is unsent waits, encoded once (bytes kept across retries, merged by concatenation into
  few requests when the agent is back), in a bounded buffer; the oldest payloads are dropped
  (and counted) first.

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
from typing import IO, Any, Deque, Dict, List, Mapping, Optional, Sequence, Tuple

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_dd_lambda import config
from otel_dd_lambda._version import __version__
from otel_dd_lambda.exporters.deadline import timeout_seconds
from otel_dd_lambda.exporters.encoding import (
    Payload,
    V04Encoder,
    array_header,
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
from otel_dd_lambda.otel_layer import without_superseded

logger = logging.getLogger(__name__)

EXTENSION_PATH = "/opt/extensions/datadog-agent"
DEFAULT_MAX_PAYLOAD = 5 * 1024 * 1024
DEFAULT_MAX_LOG_LINE = 250 * 1024  # CloudWatch Logs caps one event at 256 KiB
_RETRYABLE = frozenset((408, 429))
_INTERPRETERS = {"cpython": "CPython", "pypy": "PyPy"}
# After a flush reached its deadline, the next one asks the agent a small question and waits this
# long for the start of an answer (a healthy local agent answers in about a millisecond); later
# ones only look whether it came. An unanswered probe is replaced after PROBE_MAX_AGE seconds.
PROBE_WAIT = 0.05
PROBE_MAX_AGE = 60.0
_LOGGED_BODY = 200  # characters of an agent's error body that may reach a log line


def printable(data: bytes, limit: int = _LOGGED_BODY) -> str:
    """Outside text made safe for one log line: at most ``limit`` characters, control and
    non-printable characters escaped (no forged lines, no terminal escapes)."""
    text = data[:limit * 4].decode("utf-8", "replace")
    out = []
    size = 0
    for char in text:
        piece = char if char.isprintable() else (
            "\\x%02x" % ord(char) if ord(char) < 0x100 else "\\u%04x" % ord(char))
        size += len(piece)
        if size > limit:
            out.append("...")
            break
        out.append(piece)
    return "".join(out)


def _header_size(body: bytes) -> int:
    """Bytes of the msgpack array header at the start of a v0.4 body."""
    first = body[0] if body else 0x90
    return 3 if first == 0xDC else 5 if first == 0xDD else 1


def _joined(group: List[Payload]) -> Tuple[Payload, List[Payload]]:
    """One v0.4 payload holding every chunk of ``group``, and the group."""
    if len(group) == 1:
        return group[0], group
    chunks = [c for p in group for c in p.chunks]
    body = b"".join([array_header(len(chunks))] + [p.body[_header_size(p.body):] for p in group])
    return Payload(body, chunks, sum(p.span_count for p in group)), group


def resolve_mode(mode: Optional[str], agent_url: Optional[str],
                 settings: Optional[config.ExporterSettings] = None) -> str:
    """``agent`` or ``log`` (see the module docstring)."""
    if settings is None:
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
    """An OTel ``SpanExporter`` writing Datadog traces; constructible with no arguments (the
    ``OTEL_TRACES_EXPORTER=datadog`` entry point), everything else from the environment.

    Keyword-only options, by topic (None: from ``settings``, else the environment):

    * where: ``agent_url``, ``mode`` (``agent``/``log``/``auto``), ``api_version`` (``v0.4`` or
      ``v0.5``), ``headers`` added to every request, ``out`` (log mode's stream, else stdout);
    * what the spans say: ``service``, ``env``, ``version``, ``native_span_events``;
    * bounds: ``timeout`` (seconds, the cap on one flush), ``max_payload_size`` (bytes per
      request), ``max_buffered_spans`` (kept while the agent is away), ``max_log_line``;
    * retries of the SDK's background ``export``: ``max_attempts``, ``backoff`` (seconds, doubled);
    * ``settings``: a ``config.ExporterSettings`` read once by the caller (tests pass one built
      from a dict); by default the environment is read here, once.
    """

    def __init__(
        self,
        agent_url: Optional[str] = None,
        *,
        mode: Optional[str] = None,
        api_version: str = "v0.4",
        headers: Optional[Mapping[str, str]] = None,
        out: Optional[IO[str]] = None,
        service: Optional[str] = None,
        env: Optional[str] = None,
        version: Optional[str] = None,
        native_span_events: Optional[bool] = None,
        timeout: Optional[float] = None,
        max_payload_size: int = DEFAULT_MAX_PAYLOAD,
        max_buffered_spans: int = 5_000,
        max_log_line: int = DEFAULT_MAX_LOG_LINE,
        max_attempts: int = 4,
        backoff: float = 0.05,
        settings: Optional[config.ExporterSettings] = None,
    ) -> None:
        if settings is None:
            settings = config.exporter_settings()
        self.mode = resolve_mode(mode, agent_url, settings)
        self.endpoint: Endpoint = resolve_endpoint(agent_url, settings)
        if api_version not in ("v0.4", "v0.5"):
            logger.warning("unsupported Datadog API version %r, using v0.4", api_version)
            api_version = "v0.4"
        self.api_version = api_version
        if api_version == "v0.5":
            from otel_dd_lambda.exporters.optional_encodings import V05Encoder  # loaded only when chosen

            self._encoder: V04Encoder = V05Encoder()
        else:
            self._encoder = V04Encoder()
        if self.mode == "agent":
            load_msgpack()  # now, at init, rather than during the first invocation's flush
        if native_span_events is None:
            native_span_events = settings.native_span_events
        # native span events only exist in v0.4; elsewhere they travel as the "events" tag
        native = bool(native_span_events) and api_version == "v0.4" and self.mode == "agent"
        self._mapper = SpanMapper(service=service, env=env, version=version, native_span_events=native,
                                  settings=settings)
        if timeout is None:
            timeout = settings.flush_timeout_ms / 1000.0
        # the cap on every flush, whatever deadline the caller gives
        self.timeout = timeout_seconds(float(timeout) * 1000.0)
        # one count and one warning per cause, whether the mapping or the encoder cut the span
        self.limits = self._encoder.limits = self._mapper.limits
        self.max_payload_size = max(1024, int(max_payload_size))
        self.max_buffered_spans = max(0, int(max_buffered_spans))
        self.max_log_line = max(1024, int(max_log_line))
        self.max_attempts = max(1, int(max_attempts))
        self.backoff = max(0.0, float(backoff))
        self._out = out
        self._extra_headers = dict(headers or {})
        self._init_state()
        _register_fork_hook(self)

    def _init_state(self) -> None:
        """What changes while exporting: connection, buffers, agent health, counters."""
        # Set when a flush gave up on an unavailable agent: later flushes try once, without
        # backoff sleeps, until the agent answers again, so a missing agent costs each
        # invocation one connection attempt rather than the whole retry schedule.
        self._agent_unavailable = False
        # Set when a flush reached its deadline with the agent connected but silent (hung,
        # dripping): later flushes only probe it (see _agent_answers) until it answers.
        self._agent_hung = False
        self._headers: Optional[Dict[str, str]] = None
        self._encoded_headers: Optional[bytes] = None
        self._rates_body: Optional[bytes] = None  # the agent's last 2xx body, already parsed
        self._transport = AgentTransport(self.endpoint)
        self._send_lock = threading.Lock()  # one request at a time on the connection
        self._buffer_lock = threading.Lock()  # guards _buffer and the counters
        self._buffer: Deque[Payload] = deque()  # encoded, oldest first
        self._log_buffer: List[Chunk] = []  # log mode: chunks another thread's write held up
        self._buffered_spans = 0
        self._shutdown = False
        self.rate_by_service: Dict[str, float] = {}
        # counters, for tests and for whoever wants to report them
        self.sent_spans = 0
        self.dropped_spans = 0  # evicted from a full buffer, or unsendable after shutdown
        self.rejected_spans = 0  # refused by the agent (400 and such)
        self._log_times: Dict[str, float] = {}

    # ------------------------------------------------------------ SpanExporter

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        """The SDK's call (a background thread outside Lambda): may back off between retries."""
        return self._export(spans, time.monotonic() + self.timeout, True)

    def export_until(self, spans: Sequence[Any], deadline: float) -> SpanExportResult:
        """Export ``spans`` (and anything buffered) before ``deadline`` (``time.monotonic()``).

        The Lambda processor's call, on the invocation's path: nothing sleeps here; what the agent
        could not take waits, encoded, for the next flush. The deadline is also capped at
        ``timeout`` from now (``OTEL_DD_LAMBDA_FLUSH_TIMEOUT_MS``).
        """
        return self._export(spans, deadline, False)

    def _export(self, spans: Sequence[Any], deadline: float, may_sleep: bool) -> SpanExportResult:
        try:
            deadline = self._capped(deadline)
            if self._shutdown:
                self._count_dropped(len(spans))
                return SpanExportResult.FAILURE
            spans = without_superseded(spans)  # hook (otel_layer): OTel's Lambda span gave way to ours
            chunks = self._mapper.map_chunks(spans) if spans else []
            ok = self._flush(chunks, deadline, may_sleep)
            return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE
        except Exception:  # never into user code
            logger.exception("Datadog export failed")
            return SpanExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Send what the buffer holds within ``timeout_millis`` (any value: NaN, negative and
        ``inf`` included; capped at ``timeout``); True when nothing is left."""
        try:
            return self._flush([], self._capped(time.monotonic() + timeout_seconds(timeout_millis)), False)
        except Exception:
            logger.exception("Datadog flush failed")
            return False

    def shutdown(self) -> None:
        try:
            if self._shutdown:
                return
            self._flush([], self._capped(time.monotonic() + self.timeout), False)
            self._shutdown = True
            with self._buffer_lock:
                if self._buffered_spans:
                    self._count_dropped(self._buffered_spans, locked=True)
                    self._buffer.clear()
                    self._buffered_spans = 0
            self._transport.close()
            self._transport.drop_probe()
        except Exception:
            logger.exception("Datadog exporter shutdown failed")

    # ------------------------------------------------------------ state

    @property
    def buffered_spans(self) -> int:
        return self._buffered_spans

    @property
    def agent_hung(self) -> bool:
        """True after a flush reached its deadline, until the agent answers again."""
        return self._agent_hung

    def stats(self) -> Dict[str, int]:
        return {
            "sent_spans": self.sent_spans,
            "buffered_spans": self._buffered_spans,
            "dropped_spans": self.dropped_spans,
            "rejected_spans": self.rejected_spans,
            "oversized_spans": self._encoder.dropped_spans,
            "unmappable_spans": self._mapper.unmappable,
        }

    # ------------------------------------------------------------ internals

    def _capped(self, deadline: float) -> float:
        """``deadline`` no later than ``timeout`` from now (NaN or not a number: now)."""
        now = time.monotonic()
        try:
            deadline = float(deadline)
        except (TypeError, ValueError, OverflowError):  # a caller's junk: no time to wait
            return now
        if deadline != deadline:  # NaN
            return now
        return min(deadline, now + self.timeout)

    def _flush(self, chunks: List[Chunk], deadline: float, may_sleep: bool) -> bool:
        """True when every span given or buffered was delivered (or deliberately dropped)."""
        remaining = deadline - time.monotonic()
        if not self._send_lock.acquire(timeout=remaining if remaining > 0 else 0):
            # another thread is sending and the caller cannot wait: keep for the next flush
            if self.mode == "log":
                self._keep_log(chunks)
            else:
                self._keep(self._encode(chunks))
            return False
        try:
            if self.mode == "log":
                with self._buffer_lock:
                    if self._log_buffer:
                        chunks = self._log_buffer + chunks
                        self._log_buffer = []
                        self._buffered_spans = 0
                if chunks:
                    self._write_log(chunks)
                return True
            # encoded once: the bytes wait in the buffer, unchanged, until the agent takes them
            payloads = self._encode(chunks)
            with self._buffer_lock:
                if self._buffer:
                    payloads[:0] = self._buffer
                    self._buffer.clear()
                    self._buffered_spans = 0
            if not payloads:
                return True
            unsent = self._send(payloads, deadline, may_sleep)
            if unsent:
                self._keep(unsent)
                return False
            return True
        finally:
            self._send_lock.release()

    def _encode(self, chunks: List[Chunk]) -> List[Payload]:
        return self._encoder.payloads(chunks, self.max_payload_size) if chunks else []

    def _keep(self, payloads: List[Payload]) -> None:
        """Buffer ``payloads`` behind anything older; evict the oldest beyond the bound."""
        if not payloads:
            return
        with self._buffer_lock:
            self._buffer.extend(payloads)
            self._buffered_spans += sum(p.span_count for p in payloads)
            evicted = 0
            while self._buffered_spans > self.max_buffered_spans and self._buffer:
                oldest = self._buffer.popleft()
                self._buffered_spans -= oldest.span_count
                evicted += oldest.span_count
            if evicted:
                self._count_dropped(evicted, locked=True)
                self._log_limited("evict", logging.WARNING,
                                  "Datadog exporter buffer full: dropped %d oldest spans", evicted)

    def _keep_log(self, chunks: List[Chunk]) -> None:
        """Log mode, another thread writing: keep the chunks for the next flush (bounded)."""
        if not chunks:
            return
        with self._buffer_lock:
            self._log_buffer.extend(chunks)
            self._buffered_spans += sum(len(c) for c in chunks)
            while self._buffered_spans > self.max_buffered_spans and self._log_buffer:
                oldest = self._log_buffer.pop(0)
                self._buffered_spans -= len(oldest)
                self._count_dropped(len(oldest), locked=True)

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

    def _fixed_headers(self) -> Dict[str, str]:
        """The headers every request carries, built once."""
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
        return self._headers

    def _request_headers(self, trace_count: int) -> Dict[str, str]:
        headers = dict(self._fixed_headers())
        headers["X-Datadog-Trace-Count"] = str(trace_count)
        return headers

    def _request_head(self, trace_count: int) -> Any:
        """``_request_headers`` encoded for the wire: the fixed lines are encoded once."""
        fixed = self._encoded_headers
        if fixed is None:
            fixed_headers = self._fixed_headers()
            if "X-Datadog-Trace-Count" in fixed_headers:  # set by the caller: keep its place
                return self._request_headers(trace_count)
            try:
                fixed = self._encoded_headers = encode_headers(fixed_headers)
            except UnicodeEncodeError:  # the transport reports it, as for any request
                return self._request_headers(trace_count)
        return fixed + b"X-Datadog-Trace-Count: %d\r\n" % trace_count

    def _agent_answers(self, deadline: float) -> bool:
        """After a flush that reached its deadline: does the agent answer now? One small request
        (an empty trace list), waited on briefly the first time and then only looked at, so a
        hung agent costs the next invocations almost nothing while their spans stay buffered."""
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        head = self._request_head(0)
        if not isinstance(head, bytes):
            head = encode_headers(head)
        try:
            answered = self._transport.probe("PUT", self._encoder.path, self._encoder.encode([]), head,
                                             min(PROBE_WAIT, left), PROBE_MAX_AGE)
        except Exception as error:
            # refused or dropped: the agent restarted or is gone, it no longer hangs; one
            # ordinary attempt tells which
            self._agent_hung = False
            self._agent_unavailable = True
            logger.debug("probe of the Datadog agent failed: %s", error.__class__.__name__)
            return True
        if answered:
            self._agent_hung = False
            return True
        self._log_limited("hung", logging.WARNING,
                          "Datadog agent at %s does not answer: spans are kept until it does",
                          self.endpoint.url)
        return False

    def _send(self, payloads: List[Payload], deadline: float, may_sleep: bool) -> List[Payload]:
        """Deliver ``payloads``; returns those left unsent by retryable failures (as they were)."""
        if self._agent_hung and not self._agent_answers(deadline):
            return payloads
        # (request, originals): a request may merge small payloads when the agent is known to
        # take them; on failure the originals go back to the buffer, not the merge
        if self._agent_unavailable and len(payloads) > 1:
            # while the agent is down, a flush costs one connection attempt: nothing is merged
            # (copied) before the agent accepts a connection
            if deadline - time.monotonic() <= 0:
                return payloads
            try:
                self._transport.connect(deadline)
            except TimeoutError:
                self._agent_hung = True
                return payloads
            except Exception as error:
                self._log_limited("conn", logging.WARNING, "Datadog agent at %s unreachable (%s): will retry",
                                  self.endpoint.url, error.__class__.__name__)
                return payloads
        queue: Deque[Tuple[Payload, List[Payload]]] = deque(self._coalesce(payloads))
        while queue:
            payload, originals = queue.popleft()
            outcome = self._send_payload(payload, deadline, may_sleep)
            if outcome == "sent":
                self.sent_spans += payload.span_count
            elif outcome == "split":
                if len(originals) > 1:  # a merge too large for the agent: its parts one by one
                    queue.extendleft(reversed([(p, [p]) for p in originals]))
                    continue
                halves = self._split(payload)
                if halves is None:
                    self.rejected_spans += payload.span_count
                    self._log_limited("413", logging.ERROR,
                                      "Datadog agent refused a payload as too large (%d bytes, "
                                      "%d spans): dropped", len(payload.body), payload.span_count)
                else:
                    queue.extendleft(reversed([(p, [p]) for p in halves]))
            elif outcome == "rejected":
                self.rejected_spans += payload.span_count
            else:  # retry later: the agent is unavailable, keep this and everything after it
                unsent = list(originals)
                for _, group in queue:
                    unsent.extend(group)
                return unsent
        return []

    def _coalesce(self, payloads: List[Payload]) -> List[Tuple[Payload, List[Payload]]]:
        """v0.4 bodies are an array of packed chunks: consecutive payloads join under one array
        header by concatenation (no re-encoding), up to ``max_payload_size``."""
        if self.api_version != "v0.4":
            return [(p, [p]) for p in payloads]
        out: List[Tuple[Payload, List[Payload]]] = []
        group: List[Payload] = []
        size = 0
        for payload in payloads:
            body_size = len(payload.body) - _header_size(payload.body)
            if group and size + body_size + 5 > self.max_payload_size:
                out.append(_joined(group))
                group, size = [], 0
            group.append(payload)
            size += body_size
        if group:
            out.append(_joined(group))
        return out

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

    def _send_payload(self, payload: Payload, deadline: float, may_sleep: bool) -> str:
        """``sent``, ``split`` (413), ``rejected`` (dropped) or ``retry`` (keep for later).

        Retries within the call (with backoff sleeps) only when ``may_sleep`` (the SDK's
        background ``export``); on the invocation's path a failure waits for the next flush.
        """
        headers = self._request_head(len(payload.chunks))
        path = self._encoder.path
        delay = self.backoff
        attempts = 1 if (self._agent_unavailable or not may_sleep) else self.max_attempts
        for attempt in range(attempts):
            if deadline - time.monotonic() <= 0:
                return "retry"  # no time was given: says nothing about the agent
            try:
                status, body, complete = self._transport.request("PUT", path, payload.body, headers, deadline)
            except TimeoutError:
                # connected but no answer before the deadline: do not wait on it again next time
                self._agent_hung = True
                self._log_limited("timeout", logging.WARNING,
                                  "Datadog agent at %s did not answer before the flush deadline: "
                                  "spans kept for later", self.endpoint.url)
                return "retry"
            except Exception as error:  # refused, reset, garbage status line...
                self._log_limited("conn", logging.WARNING,
                                  "Datadog agent at %s unreachable (%s): will retry",
                                  self.endpoint.url, error.__class__.__name__)
            else:
                self._agent_unavailable = False  # it answered: full retries again
                if not complete:
                    self._agent_hung = True  # the body dripped past the deadline
                if 200 <= status < 300:
                    # the agent nearly always answers the same rates: parse only a new body
                    if body != self._rates_body and complete:
                        rates = parse_response_rates(body)
                        if rates is not None:
                            self.rate_by_service = rates
                        self._rates_body = body
                    return "sent"
                if status == 413:
                    return "split"
                if status not in _RETRYABLE and status < 500:
                    self._log_limited("rejected", logging.ERROR,
                                      "Datadog agent rejected a trace payload (HTTP %d, %d spans): "
                                      "dropped; %s", status, payload.span_count, printable(body))
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
        from otel_dd_lambda.exporters.optional_encodings import encode_log_lines  # log mode only

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
        self._log_buffer = []
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
