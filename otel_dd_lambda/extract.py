"""``extract_context(event, lambda_context)``: the parent, span links and trigger tags of an event.

One pass per event: ``detect`` names the trigger, its row in ``carriers.triggers`` says where the
context is (the event's carriers, or each record's), and each carrier goes through the composite
propagator's precedence (Datadog, W3C, X-Ray). Then the fallbacks: the Lambda client context and
Lambda's own ``_X_AMZN_TRACE_ID``. Batches parent on the first record (as Datadog's library does,
so its views connect) and link every record that carries a context (the OTel messaging
convention); ``DD_BATCH_PARENT=none`` makes a batch a new root with links only. Trigger tags and
the event time are computed only when read. Never raises.
"""

from __future__ import annotations

import logging
from itertools import islice
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from opentelemetry.context import Context
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, set_span_in_context

from . import config
from .carriers import detect, stepfunctions
from .carriers.tags import trigger_tags as _trigger_tags
from .carriers.triggers import UNKNOWN, Trigger, row_of
from .propagators import baggage, xray
from .propagators.composite import DatadogCompositePropagator
from .propagators.precedence import make_link

logger = logging.getLogger("otel_dd_lambda.extract")

MESSAGE_ID = "messaging.message.id"
_EMPTY_CONTEXT = Context()
SOURCE_EVENT, SOURCE_CLIENT_CONTEXT, SOURCE_XRAY, SOURCE_CUSTOM = "event", "client_context", "xray", "custom"


class EventContext:
    """What an event says about its trace. ``trigger_tags`` and ``event_time_ns`` are lazy."""

    __slots__ = ("links", "trigger", "subtype", "parent", "source", "event", "lambda_context", "_row", "_tags",
                 "_context", "baggage")

    def __init__(
        self,
        parent: Optional[SpanContext] = None,
        links: Optional[List[Link]] = None,
        trigger: Optional[str] = None,
        subtype: Optional[str] = None,
        source: Optional[str] = None,
        event: Any = None,
        lambda_context: Any = None,
        row: Trigger = UNKNOWN,
    ) -> None:
        self.parent = parent  # the remote parent SpanContext, or None (a new trace)
        self._context: Optional[Context] = None
        self.links = links if links is not None else []
        self.trigger = trigger  # Datadog's event source name ("sqs", "api-gateway", ...) or None
        self.subtype = subtype  # API Gateway: "rest", "http-api" or "websocket"
        self.source = source  # where the parent came from: event, client_context, xray, custom
        self.event = event  # what the parent was extracted from (read by the inferred span)
        self.lambda_context = lambda_context
        self._row = row  # the trigger's rules (carriers.triggers)
        self._tags: Optional[Dict[str, str]] = None
        self.baggage: Optional[Dict[str, str]] = None  # the carrier's W3C baggage items, if any

    @property
    def context(self) -> Context:
        """An OTel ``Context`` holding the parent as a ``NonRecordingSpan`` (empty without one)."""
        if self._context is None:
            parent = self.parent
            if parent is None:
                self._context = _EMPTY_CONTEXT
            else:
                self._context = set_span_in_context(NonRecordingSpan(parent), _EMPTY_CONTEXT)
            if self.baggage:
                self._context = baggage.with_items(self._context, self.baggage)
        return self._context

    @property
    def trigger_tags(self) -> Dict[str, str]:
        if self._tags is None:
            self._tags = _trigger_tags(self._row, self.event, self.lambda_context)
        return self._tags

    @property
    def event_time_ns(self) -> Optional[int]:
        """When the managed service received the event (start of an inferred span), else None."""
        return self._row.event_time_ns(self.event)

    def __repr__(self) -> str:
        return "EventContext(trigger=%r, parent=%r, links=%d)" % (self.trigger, self.parent, len(self.links))


# ---------------------------------------------------------------- settings, cached per config

_ENV_NAMES = (
    "DD_TRACE_PROPAGATION_STYLE_EXTRACT",
    "DD_TRACE_PROPAGATION_STYLE",
    "OTEL_PROPAGATORS",
    "DD_BATCH_PARENT",
    "DD_TRACE_EXTRACTOR",
    "OTEL_SPAN_LINK_COUNT_LIMIT",
)


class _Settings:
    """Configuration read from the environment (``_settings`` builds it again when it changes)."""

    __slots__ = ("composite", "use_lambda_env", "batch_parent", "extractor", "link_limit")

    def __init__(self) -> None:
        styles = config.propagation_styles("extract")
        self.use_lambda_env = config.XRAY_LAMBDA in styles
        # Lambda's own header is not a carrier style: it is the last fallback, applied once.
        self.composite = DatadogCompositePropagator(extract_styles=[s for s in styles if s != config.XRAY_LAMBDA])
        self.batch_parent = config.batch_parent()
        self.extractor = config.trace_extractor()
        self.link_limit = config.span_link_limit()


_settings = config.env_cached(_ENV_NAMES, _Settings)


if TYPE_CHECKING:  # annotations only: subscripting typing generics at import costs cold-start time
    Extracted = Tuple[Optional[SpanContext], List[Link]]  # a parent (or None) and the links found with it
    WithBaggage = Tuple[Optional[SpanContext], List[Link], Optional[Dict[str, str]]]  # and the W3C baggage items


def resolve(carrier: Any, composite: Optional[DatadogCompositePropagator] = None) -> Extracted:
    """A carrier (header mapping, Step Functions context object or SpanContext) to a context."""
    if composite is None:
        composite = _settings().composite
    if type(carrier) is dict:
        if carrier.keys() <= composite.header_set:  # trace headers only (every _datadog object)
            return composite.extract_from_carrier(carrier, True)
        return _resolve_mapping(carrier, composite)
    if carrier is None:
        return None, []
    if type(carrier) is SpanContext:
        return carrier, []
    return composite.extract_from_carrier(carrier)


def _resolve_mapping(carrier: Dict[str, Any], composite: DatadogCompositePropagator) -> Extracted:
    """``resolve`` of a dict holding more than trace headers."""
    if not carrier.keys().isdisjoint(stepfunctions.CONTEXT_OBJECT_KEYS):
        sfn = stepfunctions.context_object(carrier)
        if sfn is not None:
            return stepfunctions.span_context(sfn), []
    return composite.extract_from_carrier(carrier)


def _with_baggage(carrier: Any, composite: DatadogCompositePropagator) -> WithBaggage:
    """``resolve`` and the carrier's W3C baggage items. Baggage is looked for only where it can
    be: not in a carrier of trace headers only (every ``_datadog`` object), nor in one without
    any spelling of the header (most HTTP requests): one set test instead of a parse attempt."""
    if type(carrier) is dict:
        if carrier.keys() <= composite.header_set:
            parent, links = composite.extract_from_carrier(carrier, True)
            return parent, links, None
        parent, links = _resolve_mapping(carrier, composite)
        if composite.extracts_baggage and not carrier.keys().isdisjoint(baggage.SPELLINGS):
            return parent, links, composite.extract_baggage(carrier)
        return parent, links, None
    parent, links = resolve(carrier, composite)
    return parent, links, None


# ---------------------------------------------------------------- the pass


def _load_client_context_carrier(lambda_context: Any) -> Optional[Dict[str, Any]]:
    """``lambda_invoke.client_context_carrier``, its module imported by the first event without a
    context in the event (a function whose events all carry one never loads it). Rebinds
    ``_client_context_carrier`` to it, so later events call it directly."""
    global _client_context_carrier
    from .carriers.lambda_invoke import client_context_carrier

    _client_context_carrier = client_context_carrier
    return client_context_carrier(lambda_context)


_client_context_carrier: Callable[[Any], Optional[Dict[str, Any]]] = _load_client_context_carrier

_UNSEEN: Any = object()


def _from_records(row: Trigger, records: List[Any], settings: _Settings) -> WithBaggage:
    """A batch's parent (its first record's context), links (every record's context) and the
    first record's baggage. Records that repeat a raw carrier (``row.record_key``: one
    ``SendMessageBatch`` gives every message the same ``_datadog``) are parsed and resolved once."""
    read, message_id, key_of = row.record_carrier, row.message_id, row.record_key
    assert read is not None and message_id is not None  # a batch row has both
    composite, limit = settings.composite, settings.link_limit
    seen: Dict[Any, Optional[SpanContext]] = {}
    first = records[0]
    key = key_of(first) if key_of is not None else None
    carrier = row.key_carrier(key) if key is not None else None  # type: ignore[misc]
    if not carrier:
        key, carrier = None, read(first)
    # The first record's terminated contexts (a new list from resolve) are the first links.
    parent, links, items = _with_baggage(carrier, composite)
    if key is not None:
        seen[key] = parent
    if parent is not None and len(links) < limit:
        mid = message_id(first)
        links.append(make_link(parent, {MESSAGE_ID: mid} if mid else None))
    if len(records) > 1 and len(links) < limit:
        for record in islice(records, 1, None):
            if type(record) is not dict:
                continue
            key = key_of(record) if key_of is not None else None
            # a key met before (a batch sent at once): its context without a call
            span_context = seen.get(key, _UNSEEN) if key is not None else _UNSEEN
            if span_context is _UNSEEN:
                span_context = _record_context(row, record, composite, seen, key)
            if span_context is not None:
                mid = message_id(record)
                links.append(make_link(span_context, {MESSAGE_ID: mid} if mid else None))
                if len(links) >= limit:
                    break
    return parent, links, items


def _record_context(row: Trigger, record: Dict[str, Any], composite: DatadogCompositePropagator,
                    seen: Dict[Any, Optional[SpanContext]], key: Any) -> Optional[SpanContext]:
    """A batch record's context, its raw carrier's ``key`` not in ``seen`` (the contexts of the
    raw carriers met so far)."""
    if key is not None:
        carrier = row.key_carrier(key)  # type: ignore[misc]
        if carrier:  # the raw carrier alone decides: remembered for the records repeating it
            span_context = seen[key] = resolve(carrier, composite)[0]
            return span_context
    return resolve(row.record_carrier(record), composite)[0]  # type: ignore[misc]


def _from_carriers(row: Trigger, event: Any, composite: DatadogCompositePropagator) -> WithBaggage:
    """``(parent, links, baggage)`` from the row's carriers of the event: the first context wins,
    the first baggage too (with or without a context)."""
    items = None
    for read in row.carriers:
        parent, links, found = _with_baggage(read(event), composite)
        if items is None:
            items = found
        if parent is not None:
            return parent, links, items
    return None, [], items


def extract_context(event: Any, lambda_context: Any = None, batch_parent: Optional[str] = None) -> EventContext:
    """The parent context, span links and trigger of a Lambda ``event``. Never raises.

    ``batch_parent``: ``"first"`` (the first record's context is the parent) or ``"none"`` (a
    batch is a new root with links only); default from ``DD_BATCH_PARENT``.
    """
    try:
        settings = _settings()
        trigger, subtype = detect.detect(event)
        row = row_of(subtype or trigger)
        parent: Optional[SpanContext] = None
        links: List[Link] = []
        source = None
        items = None
        if settings.extractor is not None:
            from .carriers.custom import carrier  # loaded by functions that name an extractor only

            parent, links = resolve(carrier(settings.extractor, event, lambda_context), settings.composite)
            source = SOURCE_CUSTOM
        if parent is None:
            if row.record_carrier is not None:
                parent, found, items = _from_records(row, event["Records"], settings)
            else:
                parent, found, items = _from_carriers(row, event, settings.composite)
            links = links + found if links else found  # after the extractor's terminated contexts
            source = SOURCE_EVENT
        if parent is None and lambda_context is not None:
            parent, found = resolve(_client_context_carrier(lambda_context), settings.composite)
            links += found
            source = SOURCE_CLIENT_CONTEXT
        if row.record_carrier is not None and (batch_parent or settings.batch_parent) == config.BATCH_PARENT_NONE:
            parent = None  # a new root: the records are links only
        elif parent is None and settings.use_lambda_env:
            parent = xray.lambda_span_context()
            source = SOURCE_XRAY
        if parent is None:
            source = None
        extracted = EventContext(parent, links, trigger, subtype, source, event, lambda_context, row)
        extracted.baggage = items
        return extracted
    except Exception:  # tracing never breaks the user's function
        logger.debug("context extraction failed", exc_info=True)
        return EventContext(event=event, lambda_context=lambda_context)
