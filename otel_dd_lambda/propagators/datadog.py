"""Datadog's ``x-datadog-*`` headers as an OTel ``TextMapPropagator``.

Extract: ``x-datadog-trace-id`` (low 64 bits, decimal) and ``x-datadog-parent-id`` are required;
``x-datadog-sampling-priority`` is optional (absent = sampled, priority 1); ``x-datadog-origin``
and the ``_dd.p.*`` entries of ``x-datadog-tags`` (``_dd.p.tid`` = the high 64 bits) are kept.
Priority, origin and tags ride in the ``dd=`` tracestate member so nothing is lost through OTel.

Inject: the same headers from the current span, priority and tags read back from ``dd=``.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Optional, Set

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_setter,
)
from opentelemetry.trace import SpanContext, TraceFlags

from .. import ids
from . import ddstate
from .headers import HeaderReader, logger, reader
from .precedence import merge_into, trace_state_with_dd

TRACE_ID = "x-datadog-trace-id"
PARENT_ID = "x-datadog-parent-id"
SAMPLING_PRIORITY = "x-datadog-sampling-priority"
ORIGIN = "x-datadog-origin"
TAGS = "x-datadog-tags"

MAX_TAGS_CHARS = 512  # Datadog's cap on x-datadog-tags
MAX_ORIGIN_CHARS = 256
_PRIORITY = re.compile(r"-?[0-9]{1,3}\Z")
_TAG_KEY = re.compile(r"_dd\.p\.[\x21-\x2b\x2d-\x3c\x3e-\x7e]+\Z")  # printable, no space , =
_TAG_VALUE = re.compile(r"[\x20-\x2b\x2d-\x7e]*\Z")  # printable, no ,
_PRINTABLE = re.compile(r"[\x20-\x7e]*\Z")

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)


def parse_tags(value: Optional[str]) -> Optional[Dict[str, str]]:
    """``x-datadog-tags`` to a dict of ``_dd.p.*`` entries; None (drop all) when malformed.

    Like ddtrace: over 512 characters, or any malformed pair, and no tag is kept.
    """
    if not value:
        return {}
    if len(value) > MAX_TAGS_CHARS:
        logger.debug("x-datadog-tags over %d characters: tags dropped", MAX_TAGS_CHARS)
        return None
    tags: Dict[str, str] = {}
    for pair in value.split(","):
        key, sep, val = pair.partition("=")
        key = key.strip()
        if not sep or not val or not _TAG_KEY.match(key) or not _TAG_VALUE.match(val):
            if sep and key[:6] != "_dd.p." and _PRINTABLE.match(pair):
                continue  # a well-formed non-propagated tag is ignored, as ddtrace does
            logger.debug("malformed x-datadog-tags %r: tags dropped", value[:64])
            return None
        tags[key] = val
    return tags


def extract_span_context(get: HeaderReader) -> Optional[SpanContext]:
    """The Datadog context in a carrier, or None. Never raises."""
    low = ids.parse_dd_id(get(TRACE_ID))
    if low is None:
        return None
    parent = ids.parse_dd_id(get(PARENT_ID))
    if parent is None:
        logger.debug("x-datadog-parent-id missing or invalid: no Datadog context")
        return None
    raw_priority = get(SAMPLING_PRIORITY)
    priority = int(raw_priority) if raw_priority and _PRIORITY.match(raw_priority) else None
    origin = get(ORIGIN)
    if origin is not None and (len(origin) > MAX_ORIGIN_CHARS or not _PRINTABLE.match(origin)):
        logger.debug("x-datadog-origin malformed: ignored")
        origin = None
    tags = parse_tags(get(TAGS)) or {}
    high = 0
    tid = tags.get("_dd.p.tid")
    if tid is not None:
        high = ids.parse_tid(tid) or 0
        if not high:
            logger.debug("malformed _dd.p.tid %r: 64-bit trace id kept", tid[:32])
            del tags["_dd.p.tid"]
    if priority is None:
        priority = ids.AUTO_KEEP
    state = ddstate.format_dd_member(priority, origin, tags)
    return SpanContext(
        trace_id=(high << 64) | low,
        span_id=parent,
        is_remote=True,
        trace_flags=_SAMPLED if priority > 0 else _NOT_SAMPLED,
        trace_state=trace_state_with_dd(None, state),
    )


def inject_headers(span_context: SpanContext, set_header: Any) -> None:
    """Write the Datadog headers for ``span_context`` with ``set_header(name, value)``."""
    state = ddstate.parse_dd_member(span_context.trace_state.get(ddstate.MEMBER_KEY))
    sampled = bool(span_context.trace_flags & TraceFlags.SAMPLED)
    set_header(TRACE_ID, str(span_context.trace_id & ids.LOW64_MASK))
    set_header(PARENT_ID, str(span_context.span_id))
    set_header(SAMPLING_PRIORITY, str(ddstate.sampling_priority(sampled, state)))
    tags = header_tags(span_context.trace_id, state)
    if state is not None and state.origin:
        set_header(ORIGIN, state.origin)
    if tags:
        set_header(TAGS, tags)


def header_tags(trace_id: int, state: Optional[ddstate.DDState]) -> str:
    """The ``x-datadog-tags`` value: ``_dd.p.tid`` from the id, other ``_dd.p.*`` from ``dd=``."""
    parts = []
    tid = ids.format_tid(trace_id)
    if tid:
        parts.append("_dd.p.tid=" + tid)
    if state is not None:
        for key, val in state.tags.items():
            if key != "_dd.p.tid" and _TAG_KEY.match(key) and _TAG_VALUE.match(val):
                parts.append("%s=%s" % (key, val))
    value = ",".join(parts)
    while len(value) > MAX_TAGS_CHARS and parts:  # keep under Datadog's cap, tid first
        parts.pop()
        value = ",".join(parts)
    return value


class DatadogPropagator(TextMapPropagator):
    """Datadog headers behind OTel's ``TextMapPropagator`` (entry point ``datadog``).

    Used alone, or after other propagators in OTel's own ``CompositePropagator``: when an
    earlier propagator already found a context, Datadog's precedence applies (the first context
    stays the parent; a different trace becomes a ``terminated_context`` span link).
    """

    def extract(
        self,
        carrier: CarrierT,
        context: Optional[Context] = None,
        getter: Getter[CarrierT] = None,  # type: ignore[assignment]
    ) -> Context:
        try:
            span_context = extract_span_context(reader(carrier, getter))
        except Exception:  # defensive: a propagator never raises into the caller
            logger.debug("Datadog extraction failed", exc_info=True)
            span_context = None
        if context is None:
            context = Context()
        if span_context is None:
            return context
        return merge_into(context, span_context, "datadog")

    def inject(
        self,
        carrier: CarrierT,
        context: Optional[Context] = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        span_context = trace.get_current_span(context).get_span_context()
        if not span_context.is_valid:
            return
        try:
            inject_headers(span_context, lambda k, v: setter.set(carrier, k, v))
        except Exception:
            logger.debug("Datadog injection failed", exc_info=True)

    @property
    def fields(self) -> Set[str]:
        return {TRACE_ID, PARENT_ID, SAMPLING_PRIORITY, ORIGIN, TAGS}
