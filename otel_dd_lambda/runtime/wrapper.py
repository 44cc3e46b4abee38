"""``instrument_handler``: the invocation span around a Lambda handler ``handler(event, context)``.

Per invocation: extract the parent and links from the event (``extract_context``), optionally
open an inferred span for the managed service that sent it, open the invocation span (FaaS
conventions + Datadog's serverless tags), run the handler with that span current, record an
exception on it, tag the HTTP status, end the spans, emit cold-start import spans on the first
invocation, then flush synchronously within the time the invocation has left.

Guarantees: the handler's result and exception are the very objects it produced (re-raised
with their traceback); instrumentation failures are logged at debug level and never reach the
handler's caller; the flush never outlasts ``context.get_remaining_time_in_millis()`` minus a
safety margin (``OTEL_DD_LAMBDA_FLUSH_MARGIN_MS``, default 50 ms).

``async def`` handlers are supported: the Lambda runtime only calls synchronous functions, so
the returned wrapper is synchronous and runs the coroutine with ``asyncio.run`` inside the
invocation span. With ``DD_TRACE_ENABLED=false`` the handler is returned unchanged (or, for an
``async def`` handler, with only that ``asyncio.run`` adapter).
"""

from __future__ import annotations

import logging
import time
from functools import update_wrapper
from typing import Any, Callable, Optional

from .. import config
from ..lambda_context import remaining_ms
from . import cold_start, timeout

logger = logging.getLogger(__name__)

DEFAULT_FLUSH_TIMEOUT_MS = 5000  # without a Lambda context (local runs, tests)
# Lambda's longest timeout (15 min): a larger "remaining time" comes from no real context, and an
# unbounded one would overflow the flush's lock timeout (the flushed spans would be lost).
_CO_COROUTINE = 0x80
_MARK = "__otel_dd_lambda_wrapped__"


def _is_async(handler: Any) -> bool:
    """``async def`` functions (also behind ``functools.partial``, or as ``__call__``)."""
    seen = 0
    while seen < 8:
        seen += 1
        func = getattr(handler, "func", None)  # functools.partial
        if func is not None and not hasattr(handler, "__code__"):
            handler = func
            continue
        code = getattr(handler, "__code__", None)
        if code is None:
            call = getattr(type(handler), "__call__", None)
            code = getattr(call, "__code__", None)
        return bool(code is not None and code.co_flags & _CO_COROUTINE)
    return False


def _run_async(handler: Callable[..., Any]) -> Callable[..., Any]:
    def run(event: Any, context: Any = None, *args: Any, **kwargs: Any) -> Any:
        import asyncio

        return asyncio.run(handler(event, context, *args, **kwargs))

    return run


def instrument_handler(handler: Optional[Callable[..., Any]] = None, *, tracer_provider: Optional[Any] = None,
                       flush: bool = True) -> Any:
    """Decorate a Lambda handler. Usable as ``@instrument_handler`` or
    ``@instrument_handler(tracer_provider=...)``; ``flush=False`` leaves flushing to you."""
    if handler is None:
        return lambda h: instrument_handler(h, tracer_provider=tracer_provider, flush=flush)
    if getattr(handler, _MARK, False):
        return handler
    run = _run_async(handler) if _is_async(handler) else handler
    settings = config.lambda_settings()
    if not settings.trace_enabled:
        if run is handler:
            return handler
        return update_wrapper(run, handler)
    invocation = _Instrumentation(run, tracer_provider, settings, flush)
    try:
        invocation._setup()  # at decoration, i.e. during init: not billed to the first invocation
    except Exception:
        logger.debug("tracing setup deferred to the first invocation", exc_info=True)

    def wrapper(event: Any, context: Any = None, *args: Any, **kwargs: Any) -> Any:
        return invocation.call(event, context, args, kwargs)

    update_wrapper(wrapper, handler)
    setattr(wrapper, _MARK, True)
    wrapper.instrumentation = invocation  # type: ignore[attr-defined]
    return wrapper


class _State:
    __slots__ = ("span", "token", "inferred", "trigger", "cold", "start_ns", "timeout")


class _Instrumentation:
    """One decorated handler: its tracer, resolved on the first invocation."""

    def __init__(self, handler: Callable[..., Any], provider: Optional[Any], settings: config.LambdaSettings,
                 flush: bool) -> None:
        self.handler = handler
        self.provider = provider
        self.settings = settings
        self.flush = flush
        self.tracer: Optional[Any] = None
        self.last_flush_timeout_ms: Optional[int] = None  # what the last flush was given
        self._otel: Any = None
        self._extract: Any = None
        self._inv: Any = None  # (invocation module, inferred_span, Status, StatusCode), at setup

    def _setup(self) -> None:
        if self.provider is None:
            from .configure import configure

            self.provider = configure()
        from opentelemetry import context as otel_context
        from opentelemetry import trace

        from opentelemetry.trace import Status, StatusCode

        from .._version import __version__
        from . import invocation  # loaded now, during init, not in the first call
        from ..extract import extract_context
        from .inferred import inferred_span

        self._extract = extract_context
        self._inv = (invocation, inferred_span, Status, StatusCode)
        self._otel = (otel_context, trace)
        self.tracer = self.provider.get_tracer("otel_dd_lambda", __version__)

    def call(self, event: Any, context: Any, args: tuple, kwargs: dict) -> Any:
        state = self._before(event, context)
        if state is None:
            return self.handler(event, context, *args, **kwargs)
        try:
            result = self.handler(event, context, *args, **kwargs)
        except BaseException as error:
            self._after(state, context, None, error)
            raise
        self._after(state, context, result, None)
        return result

    # ------------------------------------------------------------ before

    def _before(self, event: Any, context: Any) -> Optional[_State]:
        try:
            if self.tracer is None:
                self._setup()
            otel_context, trace = self._otel
            invocation, inferred_span = self._inv[0], self._inv[1]

            now = time.time_ns()
            cold, proactive = cold_start.invocation_state(now)
            settings = self.settings
            try:
                extracted = self._extract(event, context)
                parent_ctx = extracted.context
                links = list(extracted.links or ())
                trigger = extracted.trigger
                trigger_tags = extracted.trigger_tags or {}
                source = getattr(extracted, "source", None)
            except Exception:
                logger.debug("context extraction failed", exc_info=True)
                parent_ctx, links, trigger, trigger_tags, source = otel_context.Context(), [], None, {}, None
            parent_ctx = self._xray(parent_ctx, trace, source)

            state = _State()
            state.trigger = trigger
            state.cold = cold
            state.start_ns = now
            state.inferred = None
            pointers = None
            if trigger in ("s3", "dynamodb"):  # span pointers, on the span standing for the trigger
                from ..span_pointers import event_links  # loaded only by functions with such triggers

                pointers = event_links(event, trigger)
            if settings.managed_services:
                spec = inferred_span(extracted, now) if trigger else None  # a trigger: extraction returned
                if spec is not None:
                    inferred = self.tracer.start_span(spec.name, context=parent_ctx, kind=spec.kind,
                                                      attributes=spec.attributes, start_time=spec.start_ns,
                                                      links=pointers)
                    pointers = None
                    if not spec.synchronous:
                        inferred.end(end_time=max(spec.start_ns, now))  # async: ends at delivery
                    else:
                        state.inferred = inferred
                    parent_ctx = trace.set_span_in_context(inferred, parent_ctx)

            attributes = invocation.start_attributes(
                context, trigger, trigger_tags, cold, proactive, settings.function_name,
                invocation.batch_size(event))
            name = attributes.get("faas.name") or "aws.lambda"
            if pointers:
                links += pointers
            span = self.tracer.start_span(name, context=parent_ctx, kind=invocation.span_kind(trigger),
                                          attributes=attributes, links=links, start_time=now)
            state.span = span
            state.token = otel_context.attach(trace.set_span_in_context(span, parent_ctx))
            state.timeout = timeout.arm(self, state, context)  # ends the spans if time runs out
            return state
        except Exception:
            logger.debug("invocation instrumentation failed", exc_info=True)
            return None

    def _xray(self, parent_ctx: Any, trace: Any, source: Optional[str]) -> Any:
        """Apply DD_MERGE_XRAY_TRACES: Lambda's segment as the parent of an event without one, and
        the ``datadog-metadata`` subsegment; without it, never parent on Lambda's own segment."""
        header = config.lambda_trace_header()  # Lambda sets it anew for each invocation
        if not header:
            return parent_ctx
        settings = self.settings
        parent = trace.get_current_span(parent_ctx).get_span_context()
        from . import xray_merge

        lambda_parent = xray_merge.xray_parent(header)
        from_lambda = source == "xray" or (
            lambda_parent is not None and parent.is_valid
            and parent.trace_id == lambda_parent.trace_id and parent.span_id == lambda_parent.span_id)
        if not settings.merge_xray_traces:
            if from_lambda:  # the extractor fell back on Lambda's segment: not ours to join
                from opentelemetry.trace import INVALID_SPAN

                return trace.set_span_in_context(INVALID_SPAN, parent_ctx)
            return parent_ctx
        if not parent.is_valid and lambda_parent is not None:
            from opentelemetry.trace import NonRecordingSpan

            parent_ctx = trace.set_span_in_context(NonRecordingSpan(lambda_parent), parent_ctx)
            parent = lambda_parent
        if parent.is_valid:
            xray_merge.send_metadata_subsegment(parent, header, settings.xray_daemon_address)
        return parent_ctx

    # ------------------------------------------------------------ after

    def _after(self, state: _State, context: Any, result: Any, error: Optional[BaseException]) -> None:
        otel_context, trace = self._otel
        if state.timeout is not None and not timeout.disarm(state.timeout):
            # the watchdog ended the spans as an impending timeout: flush what came after
            try:
                otel_context.detach(state.token)
            except Exception:
                pass
            if self.flush:
                self._flush(context)
            return
        span = state.span
        status_code = None
        try:
            invocation, _, Status, StatusCode = self._inv
            if error is not None:
                try:
                    description = "%s: %s" % (type(error).__name__, error)
                except Exception:
                    description = type(error).__name__
                span.record_exception(error, escaped=True)
                span.set_status(Status(StatusCode.ERROR, description))
            else:
                status_code = invocation.http_status_code(state.trigger, result)
                if status_code is not None:
                    span.set_attribute("http.status_code", status_code)
                    if status_code.startswith("5"):
                        span.set_status(Status(StatusCode.ERROR, "HTTP " + status_code))
            span.end()
        except Exception:
            logger.debug("ending the invocation span failed", exc_info=True)
        finally:
            try:
                otel_context.detach(state.token)
            except Exception:
                pass
        try:
            inferred = state.inferred
            if inferred is not None:
                # one set_attributes call: the SDK takes its lock and checks the span per call
                tags = {}
                if status_code is not None:
                    tags["http.status_code"] = status_code
                route = span.attributes.get("http.route") if hasattr(span, "attributes") else None
                if route:
                    tags["http.route"] = route
                if self.settings.service:
                    tags["peer.service"] = self.settings.service
                if tags:
                    inferred.set_attributes(tags)
                inferred.end()
            if state.cold or cold_start.hook_installed():
                self._cold_start_spans(state)
        except Exception:
            logger.debug("finishing the invocation failed", exc_info=True)
        if self.flush:
            self._flush(context)

    def _cold_start_spans(self, state: _State) -> None:
        roots = cold_start.take_imports()  # always: the hook stops after the first invocation
        settings = self.settings
        if not (state.cold and settings.cold_start_tracing and roots):
            return
        trace = self._otel[1]
        cold_start.emit_import_spans(
            self.tracer, trace.set_span_in_context(state.span), roots,
            settings.function_name or "aws.lambda", state.start_ns,
            settings.min_cold_start_duration_ms, settings.cold_start_skip_libs)

    def _flush(self, context: Any) -> None:
        force_flush = getattr(self.provider, "force_flush", None)
        if force_flush is None:
            return
        remaining = remaining_ms(context)
        timeout_ms = DEFAULT_FLUSH_TIMEOUT_MS if remaining is None else remaining - self.settings.flush_margin_ms
        self.last_flush_timeout_ms = timeout_ms
        if timeout_ms <= 0:
            return  # no time left: the spans wait for the next invocation's flush
        try:
            force_flush(timeout_ms)
        except Exception:
            logger.debug("span flush failed", exc_info=True)
