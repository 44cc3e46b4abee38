"""W3C ``traceparent`` / ``tracestate``, with Datadog's ``dd=`` member kept current.

OTel's own ``TraceContextTextMapPropagator`` re-injects ``tracestate`` as it arrived; Datadog
expects the ``dd=`` member to name the injecting span (``p:``) and the current priority, so the
composite uses this module for the W3C style. Parsing is strict on ``traceparent`` (W3C level 1)
and lenient on ``tracestate`` (a malformed member is skipped, not the whole header).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

from opentelemetry.trace import SpanContext

from . import ddstate
from .datadog import InjectState, inject_state
from .headers import logger
from .precedence import MAX_TRACESTATE_MEMBERS, remote_span_context, trace_state

if TYPE_CHECKING:
    from .headers import HeaderReader

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

_LOWER_HEX_BYTES = b"0123456789abcdef"

try:  # W3C's key and value grammar, as OTel's TraceState already compiled it (saves import time)
    from opentelemetry.trace.span import _KEY_PATTERN as _KEY
    from opentelemetry.trace.span import _VALUE_PATTERN as _VALUE
except ImportError:  # pragma: no cover - a future OTel without them
    import re

    _KEY = re.compile(r"[a-z][_0-9a-z\-*/]{0,255}|[a-z0-9][_0-9a-z\-*/]{0,240}@[a-z][_0-9a-z\-*/]{0,13}")
    _VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")


def parse_traceparent(value: Optional[str]) -> Optional[Tuple[int, int, int]]:
    """``(trace_id, span_id, flags)`` from a ``traceparent``, or None when invalid.

    Version 00 is exactly 55 characters; a later version may append ``-<more>`` (W3C's forward
    compatibility rule); ``ff`` is never valid; all hex is lowercase; zero ids are invalid.
    """
    if not value:
        return None
    if len(value) != 55:
        value = value.strip(" \t")
        if len(value) < 55:
            return None
        if len(value) > 55 and (value[:2] == "00" or value[55] != "-"):
            return None
    if value[2] != "-" or value[35] != "-" or value[52] != "-":
        return None
    # Deleting every lowercase hex digit must leave exactly the three dashes: stricter than
    # int(x, 16), which accepts "0x", "_", "+" and spaces. bytes.translate deletes through a
    # 256-entry table in C, several times faster than str.translate's per-character dict lookups.
    head = value[:55]
    if not head.isascii() or head.encode().translate(None, _LOWER_HEX_BYTES) != b"---" or value[:2] == "ff":
        return None
    trace_id = int(value[3:35], 16)
    span_id = int(value[36:52], 16)
    if not trace_id or not span_id:
        return None
    return trace_id, span_id, int(value[53:55], 16)


def parse_tracestate(value: Optional[str]) -> Dict[str, str]:
    """The valid members of a ``tracestate`` header, in order (at most 32).

    A malformed member is skipped, not the whole header; a repeated key keeps its first value.
    """
    members: Dict[str, str] = {}
    if not value:
        return members
    # Printable ASCII (no tab, no control, no non-ASCII) lets each value be checked with three
    # cheap tests instead of a regex; anything else takes the strict path.
    plain = value.isascii() and value.isprintable()
    for item in value.split(","):
        key, sep, val = item.strip(" \t").partition("=")
        if not sep or key in members:
            continue
        if plain and key in _VALID_KEYS:
            valid = 0 < len(val) <= 256 and "=" not in val and val[-1] != " "
        else:
            valid = _KEY.fullmatch(key) is not None and _VALUE.fullmatch(val) is not None
            if valid and len(_VALID_KEYS) < 64:  # vendor keys repeat; remember a few
                _VALID_KEYS.add(key)
        if not valid:
            logger.debug("tracestate member %r skipped: malformed", item[:64])
            continue
        members[key] = val
        if len(members) == MAX_TRACESTATE_MEMBERS:
            break
    return members


_VALID_KEYS = {ddstate.MEMBER_KEY}


def extract_span_context(get: HeaderReader) -> Optional[SpanContext]:
    """The W3C context in a carrier, or None. Never raises."""
    raw = get(TRACEPARENT)
    if raw is None:
        return None
    parsed = parse_traceparent(raw)
    if parsed is None:
        logger.debug("traceparent %r invalid: no W3C context", raw[:64])
        return None
    trace_id, span_id, flags = parsed
    return remote_span_context(trace_id, span_id, bool(flags & 1), trace_state(parse_tracestate(get(TRACESTATE))))


def tracestate_header(span_context: SpanContext, state: Optional[InjectState] = None) -> str:
    """``tracestate`` for an outgoing request: a fresh ``dd=`` member first, then the others."""
    if state is None:
        state = inject_state(span_context)
    value = "dd=p:%016x%s" % (span_context.span_id, state.dd_rest)
    members = span_context.trace_state
    if len(members) > (1 if ddstate.MEMBER_KEY in members else 0):
        parts = [value]
        for key, val in members.items():
            if key != ddstate.MEMBER_KEY and len(parts) < MAX_TRACESTATE_MEMBERS:
                parts.append("%s=%s" % (key, val))
        value = ",".join(parts)
    return value


def inject_headers(span_context: SpanContext, set_header: Any, state: Optional[InjectState] = None) -> None:
    set_header(
        TRACEPARENT,
        "00-%032x-%016x-%02x" % (span_context.trace_id, span_context.span_id, span_context.trace_flags & 0xFF),
    )
    set_header(TRACESTATE, tracestate_header(span_context, state))
