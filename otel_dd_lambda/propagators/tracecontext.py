"""W3C ``traceparent`` / ``tracestate``, with Datadog's ``dd=`` member kept current.

OTel's own ``TraceContextTextMapPropagator`` re-injects ``tracestate`` as it arrived; Datadog
expects the ``dd=`` member to name the injecting span (``p:``) and the current priority, so the
composite uses this module for the W3C style. Parsing is strict on ``traceparent`` (W3C level 1)
and lenient on ``tracestate`` (a malformed member is skipped, not the whole header).
"""

from __future__ import annotations

import re
from typing import Any, Dict, Optional

from opentelemetry.trace import SpanContext, TraceFlags

from .. import ids
from . import ddstate
from .headers import HeaderReader, logger
from .precedence import MAX_TRACESTATE_MEMBERS, _fast_trace_state

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

_LOWER_HEX = frozenset("0123456789abcdef")
_KEY = re.compile(r"[a-z][_0-9a-z\-*/]{0,255}\Z|[a-z0-9][_0-9a-z\-*/]{0,240}@[a-z][_0-9a-z\-*/]{0,13}\Z")
_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]\Z")
_FLAGS = (TraceFlags(0), TraceFlags(1))


def parse_traceparent(value: Optional[str]):
    """``(trace_id, span_id, flags)`` from a ``traceparent``, or None when invalid."""
    if not value:
        return None
    value = value.strip(" \t")
    if len(value) < 55 or value[2] != "-" or value[35] != "-" or value[52] != "-":
        return None
    version = value[:2]
    if version == "00":
        if len(value) != 55:
            return None
    elif version == "ff" or (len(value) > 55 and value[55] != "-"):
        return None
    head = value[:55]
    if not _LOWER_HEX.issuperset(head.replace("-", "")):
        return None
    trace_id = int(head[3:35], 16)
    span_id = int(head[36:52], 16)
    if not trace_id or not span_id:
        return None
    return trace_id, span_id, int(head[53:55], 16)


def parse_tracestate(value: Optional[str]) -> Dict[str, str]:
    """The valid members of a ``tracestate`` header, in order (at most 32)."""
    members: Dict[str, str] = {}
    if not value:
        return members
    for item in value.split(","):
        key, sep, val = item.strip(" \t").partition("=")
        if not sep or key in members:
            continue
        if not _KEY.match(key) or not _VALUE.match(val):
            logger.debug("tracestate member %r skipped: malformed", item[:64])
            continue
        members[key] = val
        if len(members) == MAX_TRACESTATE_MEMBERS:
            break
    return members


def extract_span_context(get: HeaderReader) -> Optional[SpanContext]:
    parsed = parse_traceparent(get(TRACEPARENT))
    if parsed is None:
        return None
    trace_id, span_id, flags = parsed
    return SpanContext(
        trace_id=trace_id,
        span_id=span_id,
        is_remote=True,
        trace_flags=_FLAGS[flags & 1],
        trace_state=_fast_trace_state(parse_tracestate(get(TRACESTATE))),
    )


def tracestate_header(span_context: SpanContext) -> str:
    """``tracestate`` for an outgoing request: a fresh ``dd=`` member first, then the others."""
    trace_state = span_context.trace_state
    state = ddstate.parse_dd_member(trace_state.get(ddstate.MEMBER_KEY)) or ddstate.EMPTY
    sampled = bool(span_context.trace_flags & TraceFlags.SAMPLED)
    tags = state.tags
    tid = ids.format_tid(span_context.trace_id)
    if tid and tags.get("_dd.p.tid") != tid:
        tags = dict(tags)
        tags["_dd.p.tid"] = tid
    dd_value = ddstate.format_dd_member(
        ddstate.sampling_priority(sampled, state), state.origin, tags, "%016x" % span_context.span_id
    )
    parts = ["dd=" + dd_value]
    for key, val in trace_state.items():
        if key != ddstate.MEMBER_KEY and len(parts) < MAX_TRACESTATE_MEMBERS:
            parts.append("%s=%s" % (key, val))
    return ",".join(parts)


def inject_headers(span_context: SpanContext, set_header: Any) -> None:
    set_header(
        TRACEPARENT,
        "00-%032x-%016x-%02x" % (span_context.trace_id, span_context.span_id, span_context.trace_flags & 0xFF),
    )
    set_header(TRACESTATE, tracestate_header(span_context))
