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
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from .. import config
from ..carriers import detect
from ..carriers.durable import is_durable_event
from ..lambda_context import remaining_ms
from ..otel_layer import on_invocation
from . import cold_start, timeout

if TYPE_CHECKING:
    from contextvars import Token

    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.context import Context
    from opentelemetry.trace import Link, Span, Status, StatusCode, Tracer

    from ..carriers import authorizer
    from ..extract import EventContext, extract_context
    from . import invocation
    from .inferred import inferred_span

logger = logging.getLogger(__name__)


def _no_context() -> Context:
    from opentelemetry.context import Context

    return Context()

DEFAULT_FLUSH_TIMEOUT_MS = 5000  # without a Lambda context (local runs, tests)
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
            code = getattr(_class_call(handler), "__code__", None)
        return bool(code is not None and code.co_flags & _CO_COROUTINE)
    return False


def _class_call(handler: Any) -> Any:
    """The ``__call__`` a callable object's class defines (looked up as Python calls it: on the class)."""
    for klass in type(handler).__mro__:
        call = vars(klass).get("__call__")
        if call is not None:
            return call
    return None


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
    wrapper.__dict__["instrumentation"] = invocation  # for tests and debugging
    return wrapper


def _load_per_invocation_modules() -> None:
    """Import what every invocation uses, once, during init; bound here as module globals.

    Not at this module's import: a handler with tracing off never loads OTel. Not inside the
    per-invocation functions either: a ``from ... import`` there costs ~1 µs each time, and the
    dozen of them measured 9-13% of the wrapper's own CPU time per invocation.
    """
    global otel_context, trace, Status, StatusCode, invocation, inferred_span, extract_context, authorizer
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode

    from ..carriers import authorizer
    from ..extract import extract_context
    from . import invocation
    from .inferred import inferred_span


class _State:
    """One invocation in flight: its spans and what ending them needs."""

    __slots__ = ("span", "token", "inferred", "trigger", "cold", "start_ns", "timeout", "durable")

    def __init__(self, span: Span, token: Token[Context], inferred: Optional[Span], trigger: Optional[str],
                 cold: bool, start_ns: int) -> None:
        self.span = span
        self.token = token  # of the context attach, for the detach
        self.inferred = inferred  # the synchronous inferred span, ended with the invocation
        self.trigger = trigger
        self.cold = cold
        self.start_ns = start_ns
        self.timeout: Optional[timeout.Guard] = None
        self.durable = False  # a durable function's invocation: aws.durable.* tags


def _detach(token: Token[Context]) -> None:
    try:
        otel_context.detach(token)
    except Exception:
        pass


def _encode_authorizer(state: _State, event: Any, result: Dict[str, Any]) -> None:
    """An API Gateway Lambda authorizer's policy: its context carries this trace on to the function
    behind the API (after the spans ended: the downstream span starts at their end)."""
    if not authorizer.is_authorizer_response(result):
        return
    source = state.inferred or state.span  # the span standing for API Gateway, as datadog_lambda does
    end_ns = getattr(source, "end_time", None)
    request_context = event.get("requestContext") if type(event) is dict else None
    request_id = request_context.get("requestId") if type(request_context) is dict else None
    authorizer.encode_context(result, source.get_span_context(), end_ns or time.time_ns(), request_id)


def _record_error(span: Span, error: BaseException) -> None:
    try:
        description = "%s: %s" % (type(error).__name__, error)
    except Exception:  # an exception whose __str__ fails
        description = type(error).__name__
    span.record_exception(error, escaped=True)
    span.set_status(Status(StatusCode.ERROR, description))


class _Instrumentation:
    """One decorated handler: its tracer, resolved at decoration (or on the first invocation)."""

    def __init__(self, handler: Callable[..., Any], provider: Optional[Any], settings: config.LambdaSettings,
                 flush: bool) -> None:
        self.handler = handler
        self.provider = provider
        self.settings = settings
        self.flush = flush
        self.tracer: Optional[Tracer] = None
        self.last_flush_timeout_ms: Optional[int] = None  # what the last flush was given

    def _setup(self) -> None:
        with cold_start.paused_then_frozen():
            self._set_up()

    def _set_up(self) -> None:
        if self.provider is None:
            from .configure import configure

            self.provider = configure()
        # Loaded now, during init, not in the first invocation.
        from .._version import __version__

        _load_per_invocation_modules()

        self.tracer = self.provider.get_tracer("otel_dd_lambda", __version__)

    def call(self, event: Any, context: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        state = self._before(event, context)
        if state is None:
            return self.handler(event, context, *args, **kwargs)
        try:
            result = self.handler(event, context, *args, **kwargs)
        except BaseException as error:
            self._after(state, event, context, None, error)
            raise
        self._after(state, event, context, result, None)
        return result

    # ------------------------------------------------------------ before

    def _before(self, event: Any, context: Any) -> Optional[_State]:
        try:
            if self.tracer is None:
                self._setup()
            return self._start(event, context)
        except Exception:
            logger.debug("invocation instrumentation failed", exc_info=True)
            return None

    def _start(self, event: Any, context: Any) -> _State:
        tracer = self.tracer
        assert tracer is not None  # _setup ran
        now = time.time_ns()
        cold, proactive = cold_start.invocation_state(now)
        # hook (otel_layer): OTel's Lambda span, if current, gives way to ours; log format on a cold start
        on_invocation(trace, cold)
        extracted = self._extract(event, context)
        if extracted is None:
            parent_ctx, links, trigger, trigger_tags, source = _no_context(), [], None, {}, None
        else:
            parent_ctx, links, trigger = extracted.context, list(extracted.links or ()), extracted.trigger
            trigger_tags, source = extracted.trigger_tags or {}, extracted.source
        parent_ctx = self._xray(parent_ctx, source)
        pointers: List[Link] = []
        if trigger in (detect.S3, detect.DYNAMODB):  # span pointers, on the span standing for the trigger
            from ..span_pointers import event_links  # loaded only by functions with such triggers

            pointers = event_links(event, trigger)
        inferred = None
        if self.settings.managed_services and extracted is not None and trigger:
            inferred, parent_ctx, pointers = self._start_inferred(tracer, extracted, now, parent_ctx, pointers)

        attributes = invocation.start_attributes(
            context, trigger, trigger_tags, cold, proactive, self.settings.function_name,
            invocation.batch_size(event))
        if extracted is not None and extracted.baggage:  # baggage.<key> tags (DD_TRACE_BAGGAGE_TAG_KEYS)
            from ..propagators.baggage import span_tags

            attributes.update(span_tags(extracted.baggage, self.settings.baggage_tag_keys))
        is_durable = is_durable_event(event)
        if is_durable:
            # imported by a durable function's first invocation only: ~0.4 M instructions and its
            # module's memory kept off every other function's cold start
            from . import durable

            attributes.update(durable.start_tags(event))
        name = attributes.get("faas.name") or "aws.lambda"
        span = tracer.start_span(name, context=parent_ctx, kind=invocation.span_kind(trigger),
                                 attributes=attributes, links=links + pointers, start_time=now)
        token = otel_context.attach(trace.set_span_in_context(span, parent_ctx))
        state = _State(span, token, inferred, trigger, cold, now)
        state.durable = is_durable
        state.timeout = timeout.arm(self, state, context)  # ends the spans if time runs out
        return state

    @staticmethod
    def _extract(event: Any, context: Any) -> Optional[EventContext]:
        """What the event says (parent, links, trigger, tags, event time); None if extraction failed."""
        try:
            return extract_context(event, context)
        except Exception:
            logger.debug("context extraction failed", exc_info=True)
            return None

    def _start_inferred(self, tracer: Tracer, extracted: EventContext, now: int, parent_ctx: Context,
                        pointers: List[Link]) -> Tuple[Optional[Span], Context, List[Link]]:
        """The span of the managed service that sent the event, when there is one: ``(the span if it
        ends with the invocation, the invocation's parent context, pointers still to place)``.
        It takes the span pointers, as the span standing for the trigger."""
        spec = inferred_span(extracted, now)
        if spec is None:
            return None, parent_ctx, pointers
        span = tracer.start_span(spec.name, context=parent_ctx, kind=spec.kind, attributes=spec.attributes,
                                 start_time=spec.start_ns, links=pointers or None)
        parent_ctx = trace.set_span_in_context(span, parent_ctx)
        if not spec.synchronous:
            span.end(end_time=max(spec.start_ns, now))  # async: ends at delivery
            return None, parent_ctx, []
        return span, parent_ctx, []

    def _xray(self, parent_ctx: Context, source: Optional[str]) -> Context:
        """Apply DD_MERGE_XRAY_TRACES: Lambda's segment as the parent of an event without one, and
        the ``datadog-metadata`` subsegment; without it, never parent on Lambda's own segment."""
        header = config.lambda_trace_header()  # Lambda sets it anew for each invocation
        if not header:
            return parent_ctx
        from . import xray_merge

        settings = self.settings
        parent = trace.get_current_span(parent_ctx).get_span_context()
        lambda_parent = xray_merge.xray_parent(header)
        from_lambda = source == "xray" or (
            lambda_parent is not None and parent.is_valid
            and parent.trace_id == lambda_parent.trace_id and parent.span_id == lambda_parent.span_id)
        if not settings.merge_xray_traces:
            if from_lambda:  # the extractor fell back on Lambda's segment: not ours to join
                return trace.set_span_in_context(trace.INVALID_SPAN, parent_ctx)
            return parent_ctx
        if not parent.is_valid and lambda_parent is not None:
            parent_ctx = trace.set_span_in_context(trace.NonRecordingSpan(lambda_parent), parent_ctx)
            parent = lambda_parent
        if parent.is_valid:
            xray_merge.send_metadata_subsegment(parent, header, settings.xray_daemon_address)
        return parent_ctx

    # ------------------------------------------------------------ after

    def _after(self, state: _State, event: Any, context: Any, result: Any, error: Optional[BaseException]) -> None:
        if state.timeout is not None and not timeout.disarm(state.timeout):
            # the watchdog ended the spans as an impending timeout: flush what came after
            _detach(state.token)
        else:
            status_code = self._end_invocation_span(state, event, result, error)
            _detach(state.token)
            try:
                if state.inferred is not None:
                    self._end_inferred(state, status_code)
                self.finish_cold_start(state)
                if (error is None and type(result) is dict and self.settings.encode_authorizer_context
                        and ("policyDocument" in result or "isAuthorized" in result)):  # an authorizer's answer
                    _encode_authorizer(state, event, result)
            except Exception:
                logger.debug("finishing the invocation failed", exc_info=True)
        if self.flush:
            self._flush(context)

    def _end_invocation_span(self, state: _State, event: Any, result: Any,
                             error: Optional[BaseException]) -> Optional[str]:
        """Error or HTTP status, captured payloads, end. Returns the HTTP status code tagged."""
        span = state.span
        status_code = None
        try:
            if error is not None:
                _record_error(span, error)
            else:
                status_code = self._tag_status(span, state.trigger, result)
                if state.durable:  # the durable SDK's answer: SUCCEEDED, FAILED or PENDING
                    from . import durable  # (loaded by _start already)

                    span.set_attributes(durable.end_tags(result))
            if self.settings.capture_payload:
                self._tag_payloads(span, event, result)
        except Exception:
            logger.debug("tagging the invocation span failed", exc_info=True)
        try:
            span.end()
        except Exception:
            logger.debug("ending the invocation span failed", exc_info=True)
        return status_code

    @staticmethod
    def _tag_status(span: Span, trigger: Optional[str], result: Any) -> Optional[str]:
        """An HTTP trigger's response status; a 5xx makes the invocation an error."""
        status_code = invocation.http_status_code(trigger, result)
        if status_code is not None:
            span.set_attribute("http.status_code", status_code)
            if status_code.startswith("5"):
                span.set_status(Status(StatusCode.ERROR, "HTTP " + status_code))
        return status_code

    def _tag_payloads(self, span: Span, event: Any, result: Any) -> None:
        """``DD_CAPTURE_LAMBDA_PAYLOAD``: request and response as flattened tags.

        Past the span's attribute count limit the SDK evicts the *oldest* attributes, the span's
        own: when it did, they are set again, so that payload tags give way instead.
        """
        if not span.is_recording():
            return
        from .payload import payload_tags

        depth = self.settings.capture_payload_max_depth
        tags = payload_tags("function.request", event, depth)
        tags.update(payload_tags("function.response", result, depth))
        own = dict(getattr(span, "attributes", None) or {})
        dropped = getattr(span, "dropped_attributes", 0)
        span.set_attributes(tags)
        if getattr(span, "dropped_attributes", 0) > dropped:
            logger.debug("payload tags over the span attribute limit were dropped")
            span.set_attributes(own)

    def _end_inferred(self, state: _State, status_code: Optional[str]) -> None:
        inferred = state.inferred
        assert inferred is not None
        # one set_attributes call: the SDK takes its lock and checks the span per call
        tags: Dict[str, str] = {}
        if status_code is not None:
            tags["http.status_code"] = status_code
        attributes = getattr(state.span, "attributes", None)
        route = attributes.get("http.route") if attributes else None
        if route:
            tags["http.route"] = route
        if tags:
            inferred.set_attributes(tags)
        inferred.end()

    def finish_cold_start(self, state: _State) -> None:
        """Stop the import timer once (it ends with the first invocation) and, on a cold start,
        emit its import spans under the invocation span."""
        if not (state.cold or cold_start.hook_installed()):
            return
        roots = cold_start.take_imports()
        settings = self.settings
        if not (state.cold and settings.cold_start_tracing and roots and self.tracer is not None):
            return
        from .import_timing import emit_import_spans  # loaded with the timer, by install_import_hook

        emit_import_spans(
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
