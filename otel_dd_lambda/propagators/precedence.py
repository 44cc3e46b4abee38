"""Datadog's precedence between propagation styles, and the span links it produces.

The first style that yields a valid context is the parent. A later style with a different trace
id becomes a span link (``reason=terminated_context``, ``context_headers=<style>``). A later W3C
context with the same trace id supplies the parent span id (it is the closer parent) and the
Datadog parent id is kept as ``p:`` in the ``dd=`` member (``_dd.parent_id`` once exported); its
other vendors' ``tracestate`` members are kept either way.

``TextMapPropagator.extract`` can only return a ``Context``, so the links travel in it under
``EXTRACTED_LINKS_KEY``; read them with ``get_extracted_links(context)`` and pass them to
``tracer.start_span(..., links=...)`` (the Lambda handler wrapper does this for you).
"""

from __future__ import annotations

import operator
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from opentelemetry import trace
from opentelemetry.context import Context, create_key, get_value, set_value
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, TraceFlags, TraceState
from opentelemetry.trace.propagation import _SPAN_KEY

from . import ddstate

EXTRACTED_LINKS_KEY = create_key("otel_dd_lambda.extracted_links")
MAX_TRACESTATE_MEMBERS = 32
TRACECONTEXT = "tracecontext"
DATADOG = "datadog"

SAMPLED = TraceFlags(TraceFlags.SAMPLED)
NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)


# Building OTel objects: the public constructors re-validate what the parsers have already
# validated. Measured here (python 3.11, OTel 1.36): TraceState([...]) runs two regexes per member,
# ~2 us against ~0.5 us, on a ~5 us extraction; SpanContext(...) and Link(...) cost ~0.5 us more
# than building the tuple / the two fields, 5-10% of an extraction and of a batch record's link
# (benchmarks/bench_propagators.py, bench_extract.py). That relies on OTel 1.x's layout, probed
# once here; on another layout the public constructors are used (tests/test_propagator_precedence.py
# runs both paths and compares the objects).


def _span_context_layout_known() -> bool:
    """TraceState keeps its members in ``_dict``; SpanContext is the tuple ``(trace_id, span_id,
    is_remote, trace_flags, trace_state, is_valid)``."""
    state = TraceState([("k", "v")])
    return getattr(state, "_dict", None) == {"k": "v"} and tuple(SpanContext(1, 2, True, SAMPLED, state)) == (
        1, 2, True, SAMPLED, state, True
    )


def _link_layout_known() -> bool:
    """Link keeps its context and attributes in ``_context`` and ``_attributes``, nothing else."""
    probe = Link(SpanContext(1, 1, False), {})
    return vars(probe) == {"_context": probe.context, "_attributes": {}}


FAST_SPAN_CONTEXT = _span_context_layout_known()
FAST_LINK = _link_layout_known()
_new_trace_state = TraceState.__new__
_new_tuple = tuple.__new__
_new_link = Link.__new__


def trace_state(members: Dict[str, str]) -> TraceState:
    """A ``TraceState`` of members the caller has validated (keys, values, at most 32)."""
    if FAST_SPAN_CONTEXT:
        state = _new_trace_state(TraceState)
        state._dict = members
        return state
    return TraceState(list(members.items()))


def remote_span_context(trace_id: int, span_id: int, sampled: bool, trace_state: TraceState) -> SpanContext:
    """A remote ``SpanContext`` from ids the caller has validated (non-zero, in range)."""
    flags = SAMPLED if sampled else NOT_SAMPLED
    if FAST_SPAN_CONTEXT:
        return _new_tuple(SpanContext, (trace_id, span_id, True, flags, trace_state, True))
    return SpanContext(trace_id, span_id, True, flags, trace_state)


def dd_span_context(trace_id: int, span_id: int, sampled: bool, dd_value: str) -> SpanContext:
    """``remote_span_context`` whose trace state is the one ``dd`` member ``dd_value``.

    Every Datadog extraction ends here: built in this one call rather than through the two
    above (two call frames are 5% of that path, benchmarks/bench_propagators.py).
    """
    flags = SAMPLED if sampled else NOT_SAMPLED
    if FAST_SPAN_CONTEXT:
        state = _new_trace_state(TraceState)
        state._dict = {ddstate.MEMBER_KEY: dd_value}
        return _new_tuple(SpanContext, (trace_id, span_id, True, flags, state, True))
    return SpanContext(trace_id, span_id, True, flags, TraceState([(ddstate.MEMBER_KEY, dd_value)]))


def _span_ids_public(span_context: SpanContext) -> Tuple[int, int]:
    return span_context.trace_id, span_context.span_id


# ``(trace_id, span_id)``: the two properties are Python-level calls, itemgetter is one C call
# (W3C's repeat check runs it on every extraction: 5% of that path).
span_ids: Callable[[SpanContext], Tuple[int, int]] = (
    operator.itemgetter(0, 1) if FAST_SPAN_CONTEXT else _span_ids_public
)


def make_link(span_context: SpanContext, attributes: Optional[Dict[str, str]]) -> Link:
    """``Link(span_context, attributes)``: one per batch record that carries a context."""
    if FAST_LINK:
        link = _new_link(Link)
        link._context = span_context
        link._attributes = attributes
        return link
    return Link(span_context, attributes)


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
    return trace_state(members)


def terminated_link(span_context: SpanContext, style: str) -> Link:
    return Link(span_context, {"reason": "terminated_context", "context_headers": style})


def get_extracted_links(context: Optional[Context] = None) -> List[Link]:
    """The ``terminated_context`` links found while extracting ``context`` (empty if none)."""
    links = get_value(EXTRACTED_LINKS_KEY, context)
    return list(links) if isinstance(links, (list, tuple)) else []


def _only_dd(trace_state: TraceState) -> bool:
    """No member other than ``dd`` (cheap: at most one key is looked at)."""
    for key in trace_state:
        if key != ddstate.MEMBER_KEY:
            return False
    return True


def closer_parent(primary: SpanContext, w3c: SpanContext, primary_style: str = DATADOG) -> SpanContext:
    """``primary`` (found first) merged with a W3C context of the same trace.

    W3C's span id wins (it is the closer parent); the earlier parent id becomes ``p:`` unless W3C
    already carried one (only for a Datadog primary, whose id is Datadog's). The primary's
    ``dd`` member and other members come first, then W3C's other vendors' members.
    """
    same_span = w3c.span_id == primary.span_id
    if same_span and _only_dd(w3c.trace_state):
        return primary  # nothing to add: the common case of a ddtrace-injected carrier
    dd_value = primary.trace_state.get(ddstate.MEMBER_KEY) or ""
    if not same_span:
        w3c_dd = ddstate.parse_dd_member(w3c.trace_state.get(ddstate.MEMBER_KEY))
        last_parent = w3c_dd.last_parent if w3c_dd else None
        if last_parent is None and primary_style == DATADOG:
            last_parent = "%016x" % primary.span_id
        if last_parent is not None:
            dd = ddstate.parse_dd_member(dd_value) or ddstate.EMPTY
            dd_value = ddstate.format_dd_member(dd.priority, dd.origin, dd.tags, last_parent)
    members: Dict[str, str] = {}
    if dd_value:
        members[ddstate.MEMBER_KEY] = dd_value
    for source in (primary.trace_state, w3c.trace_state):
        for key, value in source.items():
            if key not in members and key != ddstate.MEMBER_KEY and len(members) < MAX_TRACESTATE_MEMBERS:
                members[key] = value
    return remote_span_context(
        primary.trace_id,
        w3c.span_id,
        bool(primary.trace_flags & TraceFlags.SAMPLED),
        trace_state(members),
    )


def resolve(found: Sequence[Tuple[str, SpanContext]]) -> Tuple[Optional[SpanContext], List[Link]]:
    """``[(style, SpanContext), ...]`` in precedence order to ``(parent or None, links)``."""
    primary: Optional[SpanContext] = None
    primary_style = ""
    links: List[Link] = []
    for style, span_context in found:
        if primary is None:
            primary, primary_style = span_context, style
        elif span_context.trace_id != primary.trace_id:
            links.append(terminated_link(span_context, style))
        elif style == TRACECONTEXT:
            primary = closer_parent(primary, span_context, primary_style)
    return primary, links


def set_extracted(context: Optional[Context], span_context: Optional[SpanContext], links: List[Link]) -> Context:
    """``context`` (None: a new one) holding ``span_context`` as the remote parent and ``links``."""
    if not context:
        if span_context is not None and not links:
            # set_span_in_context copies the context it is given; this one is new.
            return Context({_SPAN_KEY: NonRecordingSpan(span_context)})
        context = Context()
    if span_context is not None:
        context = trace.set_span_in_context(NonRecordingSpan(span_context), context)
    if links:
        context = set_value(EXTRACTED_LINKS_KEY, tuple(get_extracted_links(context) + links), context)
    return context


def merge_into(context: Context, span_context: SpanContext, style: str) -> Context:
    """Add one style's context to a context that an earlier propagator may have filled.

    This is how our propagators keep Datadog's precedence inside OTel's own
    ``CompositePropagator``, which otherwise lets the last propagator win: the earlier context
    stays the parent, a different trace becomes a ``terminated_context`` link.
    """
    existing = trace.get_current_span(context).get_span_context()
    if not (existing.is_valid and existing.is_remote):
        return set_extracted(context, span_context, [])
    if existing.trace_id != span_context.trace_id:
        return set_extracted(context, None, [terminated_link(span_context, style)])
    return context
