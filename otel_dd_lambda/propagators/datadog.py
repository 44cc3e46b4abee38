"""Datadog's ``x-datadog-*`` headers as an OTel ``TextMapPropagator``.

Extract: ``x-datadog-trace-id`` (low 64 bits, decimal) and ``x-datadog-parent-id`` are required;
``x-datadog-sampling-priority`` is optional (absent = sampled, priority 1); ``x-datadog-origin``
and the ``_dd.p.*`` entries of ``x-datadog-tags`` (``_dd.p.tid`` = the high 64 bits) are kept.
Priority, origin and tags ride in the ``dd=`` tracestate member so nothing is lost through OTel.

Inject: the same headers from the current span, priority and tags read back from ``dd=``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Set, Tuple

from opentelemetry.context import Context
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_setter,
)
from opentelemetry.trace import SpanContext

from .. import ids
from . import ddstate
from .headers import logger, reader, write_headers
from .precedence import dd_span_context, merge_into

if TYPE_CHECKING:
    from .headers import HeaderReader

TRACE_ID = "x-datadog-trace-id"
PARENT_ID = "x-datadog-parent-id"
SAMPLING_PRIORITY = "x-datadog-sampling-priority"
ORIGIN = "x-datadog-origin"
TAGS = "x-datadog-tags"
# Written beside the others by Datadog's RUM SDK, and found in the ``_datadog`` of Node.js senders'
# SQS and SNS messages; no tracer reads it (the sampling priority says the same).
SAMPLED = "x-datadog-sampled"

MAX_TAGS_CHARS = 512  # Datadog's cap on x-datadog-tags
MAX_ORIGIN_CHARS = 256
TID_TAG = "_dd.p.tid"
_TAG_PREFIX = "_dd.p."
_REJECTED_TAGS = frozenset(("_dd.p.upstream_services",))  # obsolete; ddtrace drops it too


def _printable_ascii(value: str) -> bool:
    # isprintable() alone admits non-ASCII letters; with isascii() it is exactly 0x20-0x7E.
    return value.isascii() and value.isprintable()


def parse_tags(value: Optional[str]) -> Optional[Dict[str, str]]:
    """``x-datadog-tags`` to a dict of ``_dd.p.*`` entries; None (drop all) when malformed.

    Like ddtrace: over 512 characters, or any malformed pair, and no tag is kept. Keys are
    printable ASCII without space, comma or ``=``; values printable ASCII without comma and not
    empty; other keys than ``_dd.p.*`` are ignored.
    """
    if not value:
        return {}
    if len(value) > MAX_TAGS_CHARS:
        logger.debug("x-datadog-tags over %d characters: tags dropped", MAX_TAGS_CHARS)
        return None
    if not _printable_ascii(value):
        logger.debug("x-datadog-tags with characters outside printable ASCII: tags dropped")
        return None
    tags: Dict[str, str] = {}
    pairs = value.split(",")
    if not pairs[-1]:
        pairs.pop()  # one trailing comma is tolerated, as ddtrace does
    for pair in pairs:
        key, sep, val = pair.partition("=")
        if not (sep and key and val) or " " in key:
            logger.debug("malformed x-datadog-tags %r: tags dropped", value[:64])
            return None
        if key[:6] == _TAG_PREFIX and len(key) > 6 and key not in _REJECTED_TAGS:
            tags[key] = val
    return tags


_TID_ONLY_CHARS = len("_dd.p.tid=") + 16


def _tags_state(raw_tags: Optional[str], origin: Optional[str], priority: int) -> Tuple[int, str]:
    """``(high 64 bits, dd= member)`` from the optional headers."""
    if not raw_tags:
        return 0, ddstate.format_dd_member(priority, origin, None)
    if len(raw_tags) <= MAX_TAGS_CHARS and _plain_tags_fullmatch(raw_tags) and _UPSTREAM_SERVICES not in raw_tags:
        state = _plain_tags_state(raw_tags, origin, priority)
        if state is not None:
            return state
    tags = parse_tags(raw_tags)  # the general path: any header, as ddtrace reads it
    if not tags:
        return 0, ddstate.format_dd_member(priority, origin, None)
    high = 0
    tid = tags.get(TID_TAG)
    if tid is not None:
        high = ids.parse_tid(tid) or 0
        if not high:
            logger.debug("malformed _dd.p.tid %r: 64-bit trace id kept", tid[:32])
            del tags[TID_TAG]
    return high, ddstate.format_dd_member(priority, origin, tags)


# x-datadog-tags in which every pair is a well-formed _dd.p.* tag holding nothing that the dd=
# member encodes (no space in keys; no "," ";" "=" "~" or non-printable character anywhere).
_PLAIN_KEY = r"_dd\.p\.[\x21-\x2b\x2d-\x3a\x3c\x3e-\x7d]+"
_PLAIN_VALUE = r"[\x20-\x2b\x2d-\x3a\x3c\x3e-\x7d]+"
_PLAIN_TAGS = "{k}={v}(?:,{k}={v})*".format(k=_PLAIN_KEY, v=_PLAIN_VALUE)
_UPSTREAM_SERVICES = "_dd.p.upstream_services="


def _compile_plain_tags(text: str) -> Optional["re.Match[str]"]:
    """``_PLAIN_TAGS`` full match. Compiled on first use (not at import: cold start), after
    which ``_plain_tags_fullmatch`` is the compiled pattern's own C method (no Python frame)."""
    global _plain_tags_fullmatch
    _plain_tags_fullmatch = re.compile(_PLAIN_TAGS).fullmatch
    return _plain_tags_fullmatch(text)


_plain_tags_fullmatch: Callable[[str], Optional["re.Match[str]"]] = _compile_plain_tags


def _plain_tags_state(raw_tags: str, origin: Optional[str], priority: int) -> Optional[Tuple[int, str]]:
    """``_tags_state`` of a header that ``_PLAIN_TAGS`` matched, without a loop over its pairs;
    None when the general path must decide (a repeated key, a malformed tid, no room)."""
    # Keys and values hold no "=" or ",": the header splits into key, value, key, value, ...
    parts = raw_tags.replace("=", ",").split(",")
    tags = dict(zip(parts[::2], parts[1::2]))
    if len(tags) * 2 != len(parts):
        return None  # a repeated key
    high = 0
    tid = tags.get(TID_TAG)
    if tid is not None:
        high = ids.parse_tid(tid) or 0
        if not high:
            return None
    # The member's t. part is the header with its separators swapped (",_dd.p." only ever
    # starts a pair); when it all fits, the general path would keep every tag too.
    head = ddstate.format_dd_member(priority, origin, None)
    tail = "t." + raw_tags[6:].replace(",_dd.p.", ";t.").replace("=", ":")
    if len("dd=") + len(head) + 1 + len(tail) > ddstate.MAX_MEMBER_CHARS:
        return None
    return high, head + ";" + tail


def extract_span_context(get: HeaderReader) -> Optional[SpanContext]:
    """The Datadog context in a carrier, or None. Never raises."""
    raw_trace_id = get(TRACE_ID)
    if raw_trace_id is None:
        return None
    raw_parent = get(PARENT_ID)
    # ids.parse_dd_id for both ids in one test (measured: its two calls are 5% of this path).
    if (
        type(raw_parent) is str
        and 0 < len(raw_trace_id) <= 20
        and 0 < len(raw_parent) <= 20
        and raw_trace_id.isascii()
        and raw_trace_id.isdigit()
        and raw_parent.isascii()
        and raw_parent.isdigit()
    ):
        low, parent = int(raw_trace_id), int(raw_parent)
        valid = 0 < low <= ids.MAX_UINT64 and 0 < parent <= ids.MAX_UINT64
    else:
        valid = False
    if not valid:
        _log_invalid_ids(raw_trace_id)
        return None
    raw_priority = get(SAMPLING_PRIORITY)
    priority = ids.AUTO_KEEP  # a context without a priority is still a context: sampled
    if raw_priority is not None:
        parsed = ids.PRIORITIES.get(raw_priority) or ids.parse_priority(raw_priority)
        if parsed is None:
            logger.debug("x-datadog-sampling-priority %r invalid: priority 1", raw_priority[:16])
        else:
            priority = parsed
    origin = get(ORIGIN)
    if origin is not None and (len(origin) > MAX_ORIGIN_CHARS or not _printable_ascii(origin)):
        logger.debug("x-datadog-origin malformed: ignored")
        origin = None
    raw_tags = get(TAGS)
    # The two headers that ddtrace and our injectors write, decided here without _tags_state's
    # call (measured: 5% of this path): no tags (a 64-bit tracer), or the high half alone.
    if not origin:
        if raw_tags is None:
            dd_value = _PRIORITY_MEMBERS.get(priority) or ddstate.format_dd_member(priority, None, None)
            return dd_span_context(low, parent, priority > 0, dd_value)
        if len(raw_tags) == _TID_ONLY_CHARS and raw_tags[:10] == "_dd.p.tid=":
            high = ids.parse_tid(raw_tags[10:])
            if high:
                dd_value = "s:%d;t.tid:%s" % (priority, raw_tags[10:])
                return dd_span_context((high << 64) | low, parent, priority > 0, dd_value)
    high, dd_value = _tags_state(raw_tags, origin or None, priority)
    return dd_span_context((high << 64) | low, parent, priority > 0, dd_value)


def _log_invalid_ids(raw_trace_id: str) -> None:
    """Log which id is invalid (by the rule's home, ids.parse_dd_id)."""
    if ids.parse_dd_id(raw_trace_id) is None:
        logger.debug("x-datadog-trace-id %r invalid: no Datadog context", raw_trace_id[:32])
    else:
        logger.debug("x-datadog-parent-id missing or invalid: no Datadog context")


_PRIORITY_MEMBERS = {p: ddstate.format_dd_member(p, None, None) for p in (-1, 0, 1, 2)}


class InjectState:
    """What the Datadog and W3C injectors derive from one ``dd=`` member (computed once).

    ``priority`` follows the sampled flag when the two disagree; ``tags`` is the
    ``x-datadog-tags`` value (``_dd.p.tid`` from the trace id first, other ``_dd.p.*`` from
    ``dd=``); ``dd_rest`` is the outgoing ``dd=`` member after its ``p:<span id>`` part.
    """

    __slots__ = ("priority", "origin", "tags", "dd_rest")

    def __init__(self, dd_value: Optional[str], high: int, sampled: bool) -> None:
        state = ddstate.parse_dd_member(dd_value)
        priority = ddstate.sampling_priority(sampled, state)
        self.priority = str(priority)
        self.origin = state.origin if state is not None and state.origin else None
        tid = ids.format_tid(high << 64)
        self.tags = _header_tags(tid, state)
        tags = dict(state.tags) if state is not None else {}
        if tid:
            tags[TID_TAG] = tid
        else:
            tags.pop(TID_TAG, None)
        # Formatted with a placeholder parent so the 256-character budget counts p: too.
        value = ddstate.format_dd_member(priority, self.origin, tags, _PLACEHOLDER_PARENT)
        # W3C forbids a member value ending in a space, which an origin or a tag value may do
        # (ddtrace strips it too); the Datadog headers keep them as they came.
        self.dd_rest = value[len(_PLACEHOLDER_PARENT) + 2 :].rstrip(" ")


_PLACEHOLDER_PARENT = "0" * 16
_INJECT_CACHE_SIZE = 256
_INJECT_CACHE: Dict[Tuple[Optional[str], int, bool], InjectState] = {}


def inject_state(span_context: SpanContext) -> InjectState:
    """The ``InjectState`` of a span context, cached by its ``dd=`` member.

    Every span of a trace shares its parent's ``trace_state`` (the SDK copies it), so one
    request's spans all hit the same entry.
    """
    dd_value = span_context.trace_state.get(ddstate.MEMBER_KEY)
    key = (dd_value, span_context.trace_id >> 64, bool(span_context.trace_flags & 1))
    state = _INJECT_CACHE.get(key)
    if state is None:
        state = InjectState(*key)
        if len(_INJECT_CACHE) >= _INJECT_CACHE_SIZE:
            _INJECT_CACHE.clear()
        _INJECT_CACHE[key] = state
    return state


def inject_headers(span_context: SpanContext, set_header: Any, state: Optional[InjectState] = None) -> None:
    """Write the Datadog headers for ``span_context`` with ``set_header(name, value)``."""
    if state is None:
        state = inject_state(span_context)
    set_header(TRACE_ID, ids.format_dd_id(span_context.trace_id))
    set_header(PARENT_ID, str(span_context.span_id))
    set_header(SAMPLING_PRIORITY, state.priority)
    if state.origin:
        set_header(ORIGIN, state.origin)
    if state.tags:
        set_header(TAGS, state.tags)


def _valid_tag(key: str, val: str) -> bool:
    return (
        key[:6] == _TAG_PREFIX
        and len(key) > 6
        and _printable_ascii(key)
        and " " not in key
        and "," not in key
        and "=" not in key
        and bool(val)
        and _printable_ascii(val)
        and "," not in val
    )


def _header_tags(tid: Optional[str], state: Optional[ddstate.DDState]) -> str:
    parts = ["_dd.p.tid=" + tid] if tid else []
    if state is not None:
        for key, val in state.tags.items():
            if key != TID_TAG and _valid_tag(key, val):
                parts.append("%s=%s" % (key, val))
    value = ",".join(parts)
    while len(value) > MAX_TAGS_CHARS and parts:  # keep under Datadog's cap, tid first
        parts.pop()
        value = ",".join(parts)
    return value


def header_tags(trace_id: int, state: Optional[ddstate.DDState]) -> str:
    """The ``x-datadog-tags`` value: ``_dd.p.tid`` from the id, other ``_dd.p.*`` from ``dd=``."""
    return _header_tags(ids.format_tid(trace_id), state)


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
        getter: Optional[Getter[CarrierT]] = None,
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
        write_headers(carrier, context, setter, inject_headers, "Datadog")

    @property
    def fields(self) -> Set[str]:
        return {TRACE_ID, PARENT_ID, SAMPLING_PRIORITY, ORIGIN, TAGS}
