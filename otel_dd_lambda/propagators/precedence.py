"""Datadog's precedence between propagation styles, and the span links it produces.

The first style that yields a valid context is the parent. A later style with a different trace
id becomes a span link (``reason=terminated_context``, ``context_headers=<style>``). A later W3C
context with the same trace id supplies the parent span id (it is the closer parent) and the
Datadog parent id is kept as ``p:`` in the ``dd=`` member (``_dd.parent_id`` once exported).

``TextMapPropagator.extract`` can only return a ``Context``, so the links travel in it under
``EXTRACTED_LINKS_KEY``; read them with ``get_extracted_links(context)`` and pass them to
``tracer.start_span(..., links=...)`` (the Lambda handler wrapper does this for you).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

from opentelemetry import trace
from opentelemetry.context import Context, create_key, get_value, set_value
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, TraceState

from . import ddstate

EXTRACTED_LINKS_KEY = create_key("otel_dd_lambda.extracted_links")
MAX_TRACESTATE_MEMBERS = 32


def _fast_trace_state(members: Dict[str, str]) -> TraceState:
    # TraceState() re-validates every member with regexes (and logs warnings); ours are already
    # validated, and this sits on the per-request path.
    state = TraceState.__new__(TraceState)
    state._dict = members  # type: ignore[attr-defined]
    return state


if not hasattr(TraceState(), "_dict"):  # pragma: no cover - a future OTel without _dict

    def _fast_trace_state(members: Dict[str, str]) -> TraceState:  # noqa: F811
        return TraceState(list(members.items()))


def trace_state_with_dd(base: Optional[TraceState], dd_value: str) -> TraceState:
    """``base`` with its ``dd`` member replaced by ``dd_value`` (moved to the front, as W3C
    asks of an updated member); without a ``dd`` member when ``dd_value`` is empty."""
    members: Dict[str, str] = {}
    if dd_value:
        members[ddstate.MEMBER_KEY] = dd_value
    if base:
        for key, value in base.items():
            if key != ddstate.MEMBER_KEY and len(members) < MAX_TRACESTATE_MEMBERS:
                members[key] = value
    return _fast_trace_state(members)


def terminated_link(span_context: SpanContext, style: str) -> Link:
    return Link(span_context, {"reason": "terminated_context", "context_headers": style})


def get_extracted_links(context: Optional[Context] = None) -> List[Link]:
    """The ``terminated_context`` links found while extracting ``context`` (empty if none)."""
    links = get_value(EXTRACTED_LINKS_KEY, context)
    return list(links) if links else []


def closer_parent(primary: SpanContext, w3c: SpanContext) -> SpanContext:
    """Datadog context ``primary`` re-parented on a W3C context of the same trace.

    W3C's span id wins; the Datadog parent id becomes ``p:`` (unless W3C already carried one);
    W3C's other vendors' members are kept behind Datadog's ``dd`` member.
    """
    if w3c.span_id == primary.span_id:
        return primary
    dd = ddstate.parse_dd_member(primary.trace_state.get(ddstate.MEMBER_KEY)) or ddstate.EMPTY
    w3c_dd = ddstate.parse_dd_member(w3c.trace_state.get(ddstate.MEMBER_KEY))
    last_parent = (w3c_dd.last_parent if w3c_dd else None) or "%016x" % primary.span_id
    value = ddstate.format_dd_member(dd.priority, dd.origin, dd.tags, last_parent)
    return SpanContext(
        trace_id=primary.trace_id,
        span_id=w3c.span_id,
        is_remote=True,
        trace_flags=primary.trace_flags,
        trace_state=trace_state_with_dd(w3c.trace_state, value),
    )


def resolve(found: Sequence[tuple]) -> tuple:
    """``[(style, SpanContext), ...]`` in precedence order to ``(parent or None, links)``."""
    primary: Optional[SpanContext] = None
    primary_style = None
    links: List[Link] = []
    for style, span_context in found:
        if primary is None:
            primary, primary_style = span_context, style
        elif span_context.trace_id != primary.trace_id:
            links.append(terminated_link(span_context, style))
        elif style == "tracecontext" and primary_style == "datadog":
            primary = closer_parent(primary, span_context)
    return primary, links


def set_extracted(context: Context, span_context: Optional[SpanContext], links: List[Link]) -> Context:
    """``context`` holding ``span_context`` as the remote parent and ``links`` for the handler."""
    if span_context is not None:
        context = trace.set_span_in_context(NonRecordingSpan(span_context), context)
    if links:
        context = set_value(EXTRACTED_LINKS_KEY, tuple(get_extracted_links(context) + links), context)
    return context


def merge_into(context: Context, span_context: SpanContext, style: str) -> Context:
    """Add one style's context to a context that an earlier propagator may have filled.

    This is how our propagators keep Datadog's precedence inside OTel's own
    ``CompositePropagator``, which otherwise lets the last propagator win.
    """
    existing = trace.get_current_span(context).get_span_context()
    if not (existing.is_valid and existing.is_remote):
        return set_extracted(context, span_context, [])
    if existing.trace_id != span_context.trace_id:
        return set_extracted(context, None, [terminated_link(span_context, style)])
    return context
