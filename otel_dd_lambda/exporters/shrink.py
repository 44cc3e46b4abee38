"""Cutting a span over the payload size limit until it fits (``shrink_span``).

Kept apart from ``mapping`` because only a span larger than a whole payload needs it: a function's
cold start does not load this code (the encoders import it at the point of use)."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from otel_dd_lambda.exporters.mapping import DDSpan
from otel_dd_lambda.limits import ELLIPSIS, MAX_META_VALUE, MAX_NAME, truncate_utf8, utf8_len

# Tags kept whole when a span is cut to fit: small, and what makes the span findable.
_KEEP_WHOLE = frozenset((
    "_dd.p.tid", "_dd.p.dm", "_dd.origin", "_dd.parent_id", "env", "version", "span.kind",
    "otel.status_code", "otel.trace_id", "request_id", "function_arn", "cold_start",
    "function_trigger.event_source", "function_trigger.event_source_arn", "error.type",
    "http.method", "http.status_code",
))
_CUT_TAG = "otel_dd_lambda.size_limit"
_STACK_KEEP = 4096  # bytes of error.stack kept when a span is cut: its head and its tail
_MESSAGE_KEEP = 1024


def _head_tail(text: str, limit: int) -> str:
    """The first and last ``limit // 2`` bytes of ``text`` around a marker (a stack's outer frames
    and its innermost frame with the exception line)."""
    half = limit // 2
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    head = data[:half].decode("utf-8", "ignore")
    tail = data[-half:].decode("utf-8", "ignore")
    return "%s\n... [%d bytes cut] ...\n%s" % (head, len(data) - 2 * half, tail)


def shrink_span(span: DDSpan, size_of: Callable[[DDSpan], int], limit: int) -> Optional[DDSpan]:
    """A copy of ``span`` cut until ``size_of(copy) <= limit``, or None when even its skeleton
    (ids, times, name, error flag, the tags that identify it) does not fit.

    In order: error.stack to its head and tail; the largest tag values replaced by a marker
    (error.msg shortened instead); native span events, then span links dropped; at last only
    the identifying tags. ``otel_dd_lambda.size_limit`` says what was cut.
    """
    span = dict(span)
    meta: Dict[str, Any] = dict(span.get("meta") or {})
    span["meta"] = meta
    size = size_of(span)
    if size <= limit:
        return span
    cut: List[str] = []
    stack = meta.get("error.stack")
    if type(stack) is str and utf8_len(stack) > _STACK_KEEP:
        meta["error.stack"] = _head_tail(stack, _STACK_KEEP)
        cut.append("error.stack")
        meta[_CUT_TAG] = "cut: error.stack"
        size = size_of(span)
        if size <= limit:
            return span
    # largest values first; the size is measured again once enough may have been removed
    candidates = sorted(
        ((utf8_len(v), k) for k, v in meta.items() if type(v) is str and k not in _KEEP_WHOLE and k != _CUT_TAG),
        reverse=True,
    )
    saved = 0
    for length, key in candidates:
        if length <= 64:
            break
        if key == "error.msg":
            meta[key] = truncate_utf8(meta[key], _MESSAGE_KEEP, ELLIPSIS)
        else:
            meta[key] = "[cut: %d bytes over the size limit]" % length
        cut.append(key)
        saved += length
        if saved >= size - limit:
            meta[_CUT_TAG] = "cut: " + ",".join(cut)[:MAX_META_VALUE // 2]
            size = size_of(span)
            if size <= limit:
                return span
    for field in ("span_events", "span_links"):
        if span.get(field):
            cut.append("%s(%d)" % (field, len(span[field])))
            del span[field]
            meta[_CUT_TAG] = "cut: " + ",".join(cut)[:MAX_META_VALUE // 2]
            size = size_of(span)
            if size <= limit:
                return span
    return _skeleton(span, meta, size_of, limit)


def _skeleton(span: DDSpan, meta: Dict[str, Any], size_of: Callable[[DDSpan], int], limit: int) -> Optional[DDSpan]:
    """``shrink_span``'s last resort: identifying tags only, short fields, underscore metrics
    (sampling priority); None when even that does not fit."""
    skeleton = {k: truncate_utf8(v, 256, ELLIPSIS) for k, v in meta.items() if k in _KEEP_WHOLE}
    if "error.msg" in meta:
        skeleton["error.msg"] = truncate_utf8(meta["error.msg"], _MESSAGE_KEEP, ELLIPSIS)
    skeleton[_CUT_TAG] = "cut to the identifying tags: the span exceeded %d bytes" % limit
    span["meta"] = skeleton
    metrics = span.get("metrics") or {}
    span["metrics"] = {k: v for k, v in metrics.items() if k.startswith("_")}
    for field in ("name", "service", "type"):
        if type(span.get(field)) is str:
            span[field] = truncate_utf8(span[field], MAX_NAME)
    if type(span.get("resource")) is str:
        span["resource"] = truncate_utf8(span["resource"], 1024, ELLIPSIS)
    span.pop("span_events", None)
    span.pop("span_links", None)
    return span if size_of(span) <= limit else None
