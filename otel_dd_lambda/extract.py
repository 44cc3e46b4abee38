"""``extract_context(event, lambda_context)``: the parent, span links and trigger tags of an event.

Per event: detect the trigger with a few dict lookups, find each record's carrier (see
``carriers``), run it through the composite propagator's precedence (Datadog, W3C, X-Ray), then fall
back to the Lambda client context and Lambda's own ``_X_AMZN_TRACE_ID``. Batches parent on the
first record (as Datadog's library does, so its views connect) and link every record that carries
a context (the OTel messaging convention); ``DD_BATCH_PARENT=none`` makes a batch a new root with
links only. Trigger tags and the event time are computed only when read. Never raises.
"""

from __future__ import annotations

import logging
from datetime import datetime
from itertools import islice
from typing import Any, Dict, List, Optional, Tuple

from opentelemetry.context import Context
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, set_span_in_context

from . import config
from .carriers import appsync, authorizer, custom, detect, eventbridge, http, kinesis, lambda_invoke, mqtt, notrace, sns, sqs, stepfunctions
from .carriers.common import DATADOG_KEY, loads_object
from .carriers.tags import trigger_tags as _trigger_tags
from .propagators import xray
from .propagators.composite import DatadogCompositePropagator
from .propagators.precedence import FAST_LINK, make_link

_new_link = Link.__new__

logger = logging.getLogger("otel_dd_lambda.extract")

MESSAGE_ID = "messaging.message.id"
_EMPTY_CONTEXT = Context()
SOURCE_EVENT, SOURCE_CLIENT_CONTEXT, SOURCE_XRAY, SOURCE_CUSTOM = "event", "client_context", "xray", "custom"

# Time fields: how to turn each into nanoseconds since the epoch.
_MS, _SECONDS, _ISO = 1, 2, 3


class EventContext:
    """What an event says about its trace. ``trigger_tags`` and ``event_time_ns`` are lazy."""

    __slots__ = ("links", "trigger", "subtype", "parent", "source", "_event", "_lambda_context", "_tags", "_time", "_context")

    def __init__(
        self,
        parent: Optional[SpanContext] = None,
        links: Optional[List[Link]] = None,
        trigger: Optional[str] = None,
        subtype: Optional[str] = None,
        source: Optional[str] = None,
        event: Any = None,
        lambda_context: Any = None,
        time: Optional[Tuple[int, Any]] = None,
    ) -> None:
        self.parent = parent  # the remote parent SpanContext, or None (a new trace)
        self._context: Optional[Context] = None
        self.links = links if links is not None else []
        self.trigger = trigger  # Datadog's event source name ("sqs", "api-gateway", ...) or None
        self.subtype = subtype  # API Gateway: "rest", "http-api" or "websocket"
        self.source = source  # where the parent came from: event, client_context, xray, custom
        self._event = event
        self._lambda_context = lambda_context
        self._tags: Optional[Dict[str, str]] = None
        self._time = time

    @property
    def context(self) -> Context:
        """An OTel ``Context`` holding the parent as a ``NonRecordingSpan`` (empty without one)."""
        if self._context is None:
            parent = self.parent
            self._context = set_span_in_context(NonRecordingSpan(parent), _EMPTY_CONTEXT) if parent is not None else _EMPTY_CONTEXT
        return self._context

    @property
    def trigger_tags(self) -> Dict[str, str]:
        if self._tags is None:
            self._tags = _trigger_tags(self.trigger, self._event, self._lambda_context)
        return self._tags

    @property
    def event_time_ns(self) -> Optional[int]:
        """When the managed service received the event (start of an inferred span), else None."""
        if self._time is None:
            return None
        kind, value = self._time
        try:
            if kind == _ISO:
                if type(value) is not str or len(value) > 40:
                    return None
                return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1e6) * 1000
            number = float(value) if type(value) is str and len(value) < 32 else value
            if type(number) not in (int, float) or not 0 < number < 1e15:
                return None
            return int(number * 1e6) if kind == _MS else int(number * 1e9)
        except (ValueError, OverflowError):
            return None

    def __repr__(self) -> str:
        return "EventContext(trigger=%r, parent=%r, links=%d)" % (self.trigger, self.parent, len(self.links))


# ---------------------------------------------------------------- propagator, cached per config

_ENV_NAMES = (
    "DD_TRACE_PROPAGATION_STYLE_EXTRACT",
    "DD_TRACE_PROPAGATION_STYLE",
    "OTEL_PROPAGATORS",
    "DD_BATCH_PARENT",
    "DD_TRACE_EXTRACTOR",
    "OTEL_SPAN_LINK_COUNT_LIMIT",
)


_env_snapshot, _env_items, _env_keys = config.env_watch(_ENV_NAMES)


class _Settings:
    """Configuration read from the environment, rebuilt only when one of its variables changes.

    ``present`` and ``absent``: the variables' snapshot (``config.env_watch``), taken before
    they are read; ``_current`` compares it with the live environment in two C calls.
    """

    __slots__ = ("present", "absent", "composite", "use_lambda_env", "batch_parent", "extractor", "link_limit")

    def __init__(self) -> None:
        self.present, absent = _env_snapshot()
        self.absent = tuple(absent)  # isdisjoint walks a tuple faster than a sparse frozenset
        styles = config.propagation_styles("extract")
        self.use_lambda_env = config.XRAY_LAMBDA in styles
        # Lambda's own header is not a carrier style: it is the last fallback, applied once.
        self.composite = DatadogCompositePropagator(extract_styles=[s for s in styles if s != config.XRAY_LAMBDA])
        self.batch_parent = config.batch_parent()
        self.extractor = config.trace_extractor()
        self.link_limit = config.span_link_limit()


_settings_cache: Optional[_Settings] = None


def _settings() -> _Settings:
    global _settings_cache
    current = _settings_cache
    if current is None or not (_env_items >= current.present and _env_keys.isdisjoint(current.absent)):
        current = _settings_cache = _Settings()
    return current


def _propagator() -> DatadogCompositePropagator:
    return _settings().composite


def resolve(carrier: Any, composite: Optional[DatadogCompositePropagator] = None) -> Tuple[Optional[SpanContext], List[Link]]:
    """A carrier (header mapping, Step Functions context object or SpanContext) to a context."""
    if carrier is None:
        return None, []
    if type(carrier) is SpanContext:
        return carrier, []
    if type(carrier) is dict and not carrier.keys().isdisjoint(stepfunctions.CONTEXT_OBJECT_KEYS):
        sfn = stepfunctions.context_object(carrier)
        if sfn is not None:
            return stepfunctions.span_context(sfn), []
    return (composite or _settings().composite).extract_from_carrier(carrier)


# ---------------------------------------------------------------- per trigger

_BATCH_PARENT_NONE = config.BATCH_PARENT_NONE
_BATCH_SOURCES = {"aws:sqs": detect.SQS, "aws:sns": detect.SNS, "aws:kinesis": detect.KINESIS}
_BATCH = {
    # reader, message id, (message id, time) of the first record in one call, time kind
    detect.SQS: (sqs.record_carrier, sqs.message_id, sqs.meta, _MS),
    detect.SNS: (sns.record_carrier, sns.message_id, sns.meta, _ISO),
    detect.KINESIS: (kinesis.record_carrier, kinesis.sequence_number, kinesis.meta, _SECONDS),
}


def _batch(records: List[Any], first: Dict[str, Any], trigger: str, settings: _Settings):
    """A batch event's ``(parent, links, time)``; ``first`` is ``records[0]``, a dict."""
    read, message_id, meta, kind = _BATCH[trigger]
    composite = settings.composite
    limit = settings.link_limit
    # The first record is the parent, and its terminated contexts (a new list from resolve) are
    # the first links.
    carrier = read(first)
    if type(carrier) is dict and carrier.keys() <= composite.read_set:
        # Trace headers only (so not a Step Functions object): resolve(), minus its dispatch.
        parent, links = composite.extract_from_carrier(carrier, True)
    else:
        parent, links = resolve(carrier, composite)
    mid, when = meta(first)
    if parent is not None and len(links) < limit:
        if FAST_LINK:  # make_link, inlined (every batch event)
            link = _new_link(Link)
            link._context = parent
            link._attributes = {MESSAGE_ID: mid} if mid else None
            links.append(link)
        else:  # pragma: no cover - another OTel Link layout
            links.append(make_link(parent, {MESSAGE_ID: mid} if mid else None))
    if len(records) > 1 and len(links) < limit:
        read_set = composite.read_set
        for record in islice(records, 1, None):
            if type(record) is not dict:
                continue
            carrier = read(record)
            if type(carrier) is dict and carrier.keys() <= read_set:  # as for the first record
                span_context = composite.extract_from_carrier(carrier, True)[0]
            else:
                span_context = resolve(carrier, composite)[0]
            if span_context is not None:
                mid = message_id(record)
                links.append(make_link(span_context, {MESSAGE_ID: mid} if mid else None))
                if len(links) >= limit:
                    break
    return parent, links, (kind, when)


def _http(event: Dict[str, Any], subtype: Optional[str], composite: DatadogCompositePropagator):
    if subtype is not None:  # API Gateway: an authorizer's context comes first
        carrier = authorizer.injected_headers(event, subtype == detect.HTTP_API)
        if carrier is not None:
            span_context, links = resolve(carrier, composite)
            if span_context is not None:
                return span_context, links
    carrier = http.headers(event)
    if carrier is not None and carrier.keys().isdisjoint(stepfunctions.CONTEXT_OBJECT_KEYS):
        return composite.extract_from_carrier(carrier)  # resolve(), minus its dispatch
    return resolve(carrier, composite)


def _from_event(event: Any, trigger: Optional[str], subtype: Optional[str], settings: _Settings):
    """``(parent, links, time)`` found in the event itself."""
    if trigger in _BATCH:
        records = event["Records"]
        return _batch(records, records[0], trigger, settings)
    composite = settings.composite
    if trigger in detect.HTTP_TRIGGERS:
        parent, links = _http(event, subtype, composite)
        return parent, links, (_MS, http.request_time_ms(event)) if subtype is not None else None
    if trigger == detect.EVENTBRIDGE:
        parent, links = resolve(eventbridge.detail_carrier(event), composite)
        return parent, links, (_ISO, event.get("time"))
    if trigger == detect.STATES:
        return stepfunctions.span_context(stepfunctions.context_object(event)), [], None  # type: ignore[arg-type]
    if trigger == detect.APPSYNC:
        return resolve(appsync.headers(event), composite) + (None,)
    if trigger == detect.MQTT:
        return resolve(mqtt.message_carrier(event), composite) + (None,)
    if trigger == detect.DYNAMODB:
        return None, [], (_SECONDS, notrace.dynamodb_created_seconds(event["Records"][0]))
    if trigger == detect.S3:
        return None, [], (_ISO, notrace.s3_event_time(event["Records"][0]))
    if trigger is None and type(event) is dict and DATADOG_KEY in event:
        # An AWS IoT rule (MQTT) or any producer that put `_datadog` at the top of the payload.
        return resolve(loads_object(event[DATADOG_KEY]), composite) + (None,)
    return None, [], None


def extract_context(event: Any, lambda_context: Any = None, batch_parent: Optional[str] = None) -> EventContext:
    """The parent context, span links and trigger of a Lambda ``event``. Never raises.

    ``batch_parent``: ``"first"`` (the first record's context is the parent) or ``"none"`` (a
    batch is a new root with links only); default from ``DD_BATCH_PARENT``.
    """
    try:  # (the body is inline: one frame less per event)
        settings = _settings_cache  # _settings(), inlined
        if settings is None or not (_env_items >= settings.present and _env_keys.isdisjoint(settings.absent)):
            settings = _settings()
        subtype = None
        if type(event) is dict:
            # detect()'s first branch, inlined for the batch triggers (SQS, SNS, Kinesis).
            records = event.get("Records")
            first = records[0] if type(records) is list and records else None
            event_source = (first.get("eventSource") or first.get("EventSource")) if type(first) is dict and "cf" not in first else None
            trigger = _BATCH_SOURCES.get(event_source) if type(event_source) is str else None
            if trigger is None:
                trigger, subtype = detect.detect(event)
        elif mqtt.is_message(event):
            trigger = detect.MQTT
        else:
            trigger = None

        extractor = settings.extractor
        custom_links: Any = ()  # a list from resolve() when the extractor ran
        if extractor is not None:
            parent, custom_links = resolve(custom.carrier(extractor, event, lambda_context), settings.composite)
            source = SOURCE_CUSTOM
            time = None
        else:
            parent = None
        if parent is None:
            if trigger in _BATCH:  # the commonest triggers, straight to their reader
                parent, links, time = _batch(records, first, trigger, settings)
            elif trigger in detect.HTTP_TRIGGERS:  # _from_event's next branch, without its dispatch
                parent, links = _http(event, subtype, settings.composite)
                time = (_MS, http.request_time_ms(event)) if subtype is not None else None
            else:
                parent, links, time = _from_event(event, trigger, subtype, settings)
            if custom_links:
                links[:0] = custom_links
            source = SOURCE_EVENT
            if parent is None:
                source = None
                if lambda_context is not None:
                    parent, found_links = resolve(lambda_invoke.client_context_carrier(lambda_context), settings.composite)
                    links.extend(found_links)
                    if parent is not None:
                        source = SOURCE_CLIENT_CONTEXT
        else:
            links = custom_links
        if trigger in _BATCH and (batch_parent or settings.batch_parent) == _BATCH_PARENT_NONE:
            parent = source = None  # a new root: the records are links only
        elif parent is None and settings.use_lambda_env:
            parent = xray.lambda_span_context()
            if parent is not None:
                source = SOURCE_XRAY
        return EventContext(parent, links, trigger, subtype, source, event, lambda_context, time)
    except Exception:  # tracing never breaks the user's function
        logger.debug("context extraction failed", exc_info=True)
        return EventContext(event=event, lambda_context=lambda_context)
