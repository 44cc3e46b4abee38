"""Datadog headers, differentially against ddtrace's own ``HTTPPropagator`` (both directions).

ddtrace's headers read by ours give the same trace id, span id and sampling decision; ours read
by ddtrace give the same trace id, span id, priority, origin and ``_dd.p.*`` tags; and the exact
priority, origin and tags survive a hop through OTel (the ``dd=`` tracestate member).
"""

from __future__ import annotations

import contextlib
import os
from typing import Dict, Iterator, Optional, Sequence

os.environ.setdefault("DD_INSTRUMENTATION_TELEMETRY_ENABLED", "false")

import pytest
from ddtrace import config as dd_config
from ddtrace.propagation.http import HTTPPropagator
from ddtrace.trace import Context as DDContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

from otel_dd_lambda import ids
from otel_dd_lambda.propagators import DatadogCompositePropagator, DatadogPropagator, datadog, ddstate

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
U64 = (1 << 64) - 1


@contextlib.contextmanager
def dd_styles(extract: Sequence[str], inject: Sequence[str]) -> Iterator[None]:
    """ddtrace's propagation styles for the duration of a block (its own config object)."""
    saved = (dd_config._propagation_style_extract, dd_config._propagation_style_inject)
    dd_config._propagation_style_extract = list(extract)
    dd_config._propagation_style_inject = list(inject)
    try:
        yield
    finally:
        dd_config._propagation_style_extract, dd_config._propagation_style_inject = saved


# ------------------------------------------------------------------ strategies

low64 = st.integers(1, U64)
high64 = st.one_of(st.just(0), st.integers(1, U64))
span_ids = st.integers(1, U64)
priorities = st.sampled_from([-1, 0, 1, 2])
# Origins and tag values in the alphabet both grammars carry exactly (no , ; ~ or controls).
_SAFE = st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters=",;~")
origins = st.one_of(
    st.none(), st.sampled_from(["synthetics", "lambda", "rum", "synthetics-browser", "ciapp-test"]),
    st.text(_SAFE, min_size=1, max_size=20),
)
tag_keys = st.text(st.characters(min_codepoint=0x61, max_codepoint=0x7A), min_size=1, max_size=8).filter(
    lambda k: k not in ("tid", "dm", "upstream_services")
)
tag_values = st.text(_SAFE, min_size=1, max_size=16)
decision_makers = st.sampled_from(["-0", "-1", "-3", "-4", "-8", "-11"])


@st.composite
def dd_contexts(draw) -> DDContext:
    meta: Dict[str, str] = {}
    dm = draw(st.one_of(st.none(), decision_makers))
    if dm:
        meta["_dd.p.dm"] = dm
    for key, value in draw(st.dictionaries(tag_keys, tag_values, max_size=3)).items():
        meta["_dd.p." + key] = value
    return DDContext(
        trace_id=(draw(high64) << 64) | draw(low64),
        span_id=draw(span_ids),
        sampling_priority=draw(priorities),
        dd_origin=draw(origins),
        meta=meta,
    )


def _propagated_tags(meta: Dict[str, str]) -> Dict[str, str]:
    return {k: v for k, v in meta.items() if k.startswith("_dd.p.") and k != "_dd.p.tid"}


def _otel_span_context(
    trace_id: int, span_id: int, priority: int, origin: Optional[str], tags: Dict[str, str]
) -> SpanContext:
    return SpanContext(
        trace_id,
        span_id,
        True,
        TraceFlags(1 if priority > 0 else 0),
        TraceState([("dd", ddstate.format_dd_member(priority, origin, tags))]),
    )


def _in_context(span_context: SpanContext) -> Context:
    return trace.set_span_in_context(NonRecordingSpan(span_context))


def _state_of(span_context: SpanContext) -> ddstate.DDState:
    state = ddstate.parse_dd_member(span_context.trace_state.get("dd"))
    assert state is not None
    return state


# ------------------------------------------------------------------ ddtrace -> ours


@SETTINGS
@given(dd_contexts(), st.sampled_from([("datadog",), ("tracecontext",), ("datadog", "tracecontext")]))
def test_ddtrace_headers_read_by_ours(dd_context: DDContext, styles) -> None:
    headers: Dict[str, str] = {}
    with dd_styles(styles, styles):
        HTTPPropagator.inject(dd_context, headers)
    span_context = trace.get_current_span(DatadogCompositePropagator().extract(headers)).get_span_context()
    assert span_context.is_valid and span_context.is_remote
    assert span_context.trace_id == dd_context.trace_id
    assert span_context.span_id == dd_context.span_id
    priority = dd_context.sampling_priority
    assert bool(span_context.trace_flags.sampled) == (priority > 0)
    state = _state_of(span_context)
    assert state.priority == priority
    assert state.origin == dd_context.dd_origin
    assert _propagated_tags(state.tags) == _propagated_tags(dict(dd_context._meta))
    if "datadog" in styles:  # the Datadog propagator alone, and header names in any case
        upper = {k.upper(): v for k, v in headers.items()}
        alone = trace.get_current_span(DatadogPropagator().extract(upper)).get_span_context()
        assert (alone.trace_id, alone.span_id, alone.trace_flags) == (
            span_context.trace_id, span_context.span_id, span_context.trace_flags,
        )


# ------------------------------------------------------------------ ours -> ddtrace


@st.composite
def our_contexts(draw) -> SpanContext:
    tags = {"_dd.p." + k: v for k, v in draw(st.dictionaries(tag_keys, tag_values, max_size=3)).items()}
    dm = draw(st.one_of(st.none(), decision_makers))
    if dm:
        tags["_dd.p.dm"] = dm
    return _otel_span_context(
        (draw(high64) << 64) | draw(low64), draw(span_ids), draw(priorities), draw(origins), tags
    )


@SETTINGS
@given(our_contexts(), st.sampled_from([("datadog",), ("tracecontext",), ("datadog", "tracecontext")]))
def test_our_headers_read_by_ddtrace(span_context: SpanContext, styles) -> None:
    headers: Dict[str, str] = {}
    DatadogCompositePropagator(inject_styles=("datadog", "tracecontext")).inject(headers, _in_context(span_context))
    state = _state_of(span_context)
    with dd_styles(styles, styles):
        extracted = HTTPPropagator.extract(headers)
    assert extracted.trace_id == span_context.trace_id
    assert extracted.span_id == span_context.span_id
    assert extracted.sampling_priority == state.priority
    assert extracted.dd_origin == state.origin
    assert _propagated_tags(dict(extracted._meta)) == _propagated_tags(state.tags)
    assert "_dd.propagation_error" not in extracted._meta


@SETTINGS
@given(dd_contexts())
def test_round_trip_through_an_otel_child_span(dd_context: DDContext) -> None:
    """ddtrace -> ours -> an SDK child span -> ours -> ddtrace keeps priority, origin and tags."""
    headers: Dict[str, str] = {}
    with dd_styles(["datadog", "tracecontext"], ["datadog", "tracecontext"]):
        HTTPPropagator.inject(dd_context, headers)
        propagator = DatadogCompositePropagator()
        tracer = TracerProvider().get_tracer("test")
        with tracer.start_as_current_span("child", context=propagator.extract(headers)) as span:
            out: Dict[str, str] = {}
            propagator.inject(out)
            child_id = span.get_span_context().span_id
        back = HTTPPropagator.extract(out)
    assert back.trace_id == dd_context.trace_id
    assert back.span_id == child_id
    assert back.sampling_priority == dd_context.sampling_priority
    assert back.dd_origin == dd_context.dd_origin
    assert _propagated_tags(dict(back._meta)) == _propagated_tags(dict(dd_context._meta))
    # The W3C side names the injecting span as Datadog's last parent.
    assert "p:%016x" % child_id in out["tracestate"]


# ------------------------------------------------------------------ examples


def test_128_bit_trace_id_is_low_decimal_plus_tid() -> None:
    trace_id = (0x68A1B2C300000000 << 64) | 0x1D2B3C4D5E6F7081
    headers: Dict[str, str] = {}
    DatadogPropagator().inject(headers, _in_context(_otel_span_context(trace_id, 7, 1, None, {})))
    assert headers == {
        "x-datadog-trace-id": str(0x1D2B3C4D5E6F7081),
        "x-datadog-parent-id": "7",
        "x-datadog-sampling-priority": "1",
        "x-datadog-tags": "_dd.p.tid=68a1b2c300000000",
    }


def test_missing_priority_is_a_sampled_context() -> None:
    context = DatadogPropagator().extract({"X-Datadog-Trace-Id": "42", "X-Datadog-Parent-Id": "7"})
    span_context = trace.get_current_span(context).get_span_context()
    assert (span_context.trace_id, span_context.span_id, span_context.trace_flags.sampled) == (42, 7, True)
    assert _state_of(span_context).priority == 1


@pytest.mark.parametrize("priority,sampled", [(-1, False), (0, False), (1, True), (2, True)])
def test_every_priority_maps_to_the_flag_and_back(priority: int, sampled: bool) -> None:
    headers = {"x-datadog-trace-id": "5", "x-datadog-parent-id": "6", "x-datadog-sampling-priority": str(priority)}
    span_context = trace.get_current_span(DatadogPropagator().extract(headers)).get_span_context()
    assert span_context.trace_flags.sampled is sampled
    out: Dict[str, str] = {}
    DatadogPropagator().inject(out, _in_context(span_context))
    assert out["x-datadog-sampling-priority"] == str(priority)


def test_flag_changed_between_hops_wins_over_a_stale_priority() -> None:
    # A sampler between the hops turned the trace off: the header says 0, not the old 2.
    span_context = _otel_span_context(5, 6, 2, None, {})
    unsampled = SpanContext(5, 6, True, TraceFlags(0), span_context.trace_state)
    out: Dict[str, str] = {}
    DatadogPropagator().inject(out, _in_context(unsampled))
    assert out["x-datadog-sampling-priority"] == "0"


def test_tags_and_origin_ride_in_the_dd_member_in_ddtrace_grammar() -> None:
    headers = {
        "x-datadog-trace-id": "1",
        "x-datadog-parent-id": "2",
        "x-datadog-sampling-priority": "2",
        "x-datadog-origin": "synthetics",
        "x-datadog-tags": "_dd.p.dm=-4,_dd.p.usr.id=dXNlcg==,other=ignored",
    }
    span_context = trace.get_current_span(DatadogPropagator().extract(headers)).get_span_context()
    assert span_context.trace_state.get("dd") == "s:2;o:synthetics;t.dm:-4;t.usr.id:dXNlcg~~"
    out: Dict[str, str] = {}
    DatadogPropagator().inject(out, _in_context(span_context))
    assert out["x-datadog-tags"] == "_dd.p.dm=-4,_dd.p.usr.id=dXNlcg=="
    assert out["x-datadog-origin"] == "synthetics"


def test_malformed_tid_keeps_the_64_bit_trace() -> None:
    headers = {"x-datadog-trace-id": "9", "x-datadog-parent-id": "2", "x-datadog-tags": "_dd.p.tid=XYZ,_dd.p.dm=-1"}
    span_context = trace.get_current_span(DatadogPropagator().extract(headers)).get_span_context()
    assert span_context.trace_id == 9
    assert _state_of(span_context).tags == {"_dd.p.dm": "-1"}


def test_tags_over_512_characters_are_all_dropped_like_ddtrace() -> None:
    tags = "_dd.p.dm=-4,_dd.p.big=" + "x" * 600
    headers = {"x-datadog-trace-id": "9", "x-datadog-parent-id": "2", "x-datadog-tags": tags}
    span_context = trace.get_current_span(DatadogPropagator().extract(headers)).get_span_context()
    assert span_context.trace_id == 9 and _state_of(span_context).tags == {}
    with dd_styles(["datadog"], ["datadog"]):
        reference = HTTPPropagator.extract(headers)
    assert _propagated_tags(dict(reference._meta)) == {}


def test_injected_tags_stay_under_the_cap() -> None:
    tags = {"_dd.p.k%02d" % i: "v" * 40 for i in range(20)}
    sc = SpanContext(
        (1 << 64) | 3, 4, True, TraceFlags(1),
        TraceState([("dd", "s:1;" + ";".join("t.k%02d:%s" % (i, "v" * 40) for i in range(4)))]),
    )
    assert len(datadog.header_tags(sc.trace_id, ddstate.DDState(1, None, tags, None))) <= 512
    out: Dict[str, str] = {}
    DatadogPropagator().inject(out, _in_context(sc))
    assert out["x-datadog-tags"].startswith("_dd.p.tid=0000000000000001")


def test_fields_and_invalid_context_inject_nothing() -> None:
    assert DatadogPropagator().fields == {
        "x-datadog-trace-id", "x-datadog-parent-id", "x-datadog-sampling-priority",
        "x-datadog-origin", "x-datadog-tags",
    }
    out: Dict[str, str] = {}
    DatadogPropagator().inject(out, Context())
    assert out == {}


def test_entry_point_is_registered() -> None:
    from importlib.metadata import entry_points

    (ep,) = [e for e in entry_points(group="opentelemetry_propagator") if e.name == "datadog"]
    assert ep.load() is DatadogPropagator


def _general_tags_state(raw: Optional[str], origin: Optional[str], priority: int):
    """What datadog._tags_state computes, by the general path only (parse, then format)."""
    tags = datadog.parse_tags(raw) if raw else None
    if not tags:
        return 0, ddstate.format_dd_member(priority, origin, None)
    high = 0
    if "_dd.p.tid" in tags:
        from otel_dd_lambda import ids

        high = ids.parse_tid(tags["_dd.p.tid"]) or 0
        if not high:
            del tags["_dd.p.tid"]
    return high, ddstate.format_dd_member(priority, origin, tags)


_tag_key = st.one_of(
    st.sampled_from(["_dd.p.tid", "_dd.p.dm", "_dd.p.usr.id", "_dd.p.", "_dd.p.upstream_services", "x", "_dd.p.a b"]),
    st.text("abcdefgh._p", min_size=1, max_size=10).map(lambda s: "_dd.p." + s),
)
_tag_value = st.one_of(
    st.sampled_from(["6548f5b200000000", "-4", "baz64", "", "a=b", "x;y", "t~", "_dd.p.q", "a ", "6548F5B2"]),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12),
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.tuples(_tag_key, _tag_value), max_size=5).map(lambda kv: ",".join("%s=%s" % p for p in kv)),
    st.booleans(),
    st.sampled_from([None, "synthetics", "rum", "o" * 240]),
    st.sampled_from([-1, 0, 1, 2]),
)
def test_tags_state_fast_paths_match_the_general_path(
    raw: str, trailing_comma: bool, origin: Optional[str], priority: int
) -> None:
    raw = raw + "," if trailing_comma and raw else raw
    assert datadog._tags_state(raw, origin, priority) == _general_tags_state(raw, origin, priority)


@pytest.mark.parametrize(
    "tid",
    ["6548F5B200000000", "0x48f5b200000000", "6548_5b200000000", " 548f5b200000000", "+548f5b200000000",
     "\u0666548f5b200000000"[:16], "0000000000000000", "6548f5b20000000g"],
)
def test_a_tid_only_tag_that_is_not_16_lowercase_hex_digits_keeps_the_64_bit_trace(tid: str) -> None:
    # The one-tag fast path and the general path both check the tid with ids.parse_tid.
    assert not ids.parse_tid(tid)  # invalid, or a zero high half
    headers = {"x-datadog-trace-id": "9", "x-datadog-parent-id": "2", "x-datadog-tags": "_dd.p.tid=" + tid}
    span_context = trace.get_current_span(DatadogPropagator().extract(headers)).get_span_context()
    assert span_context.trace_id == 9
    assert DatadogCompositePropagator(("datadog",)).extract_from_carrier(headers)[0].trace_id == 9


_dd_id_text = st.one_of(
    st.integers(0, 2**64 + 5).map(str),
    st.sampled_from(["", " 1", "1 ", "+1", "-1", "0x1f", "\u0663", "1" * 21, "00000000000000000001", "1_0"]),
)


@settings(max_examples=300, deadline=None)
@given(_dd_id_text, _dd_id_text)
def test_extraction_takes_exactly_the_ids_that_ids_parse_dd_id_takes(trace_id: str, parent_id: str) -> None:
    # extract_span_context tests both ids at once; the rule's home is ids.parse_dd_id.
    got = datadog.extract_span_context({"x-datadog-trace-id": trace_id, "x-datadog-parent-id": parent_id}.get)
    low, parent = ids.parse_dd_id(trace_id), ids.parse_dd_id(parent_id)
    if low is None or parent is None:
        assert got is None
    else:
        assert got is not None and (got.trace_id, got.span_id) == (low, parent)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.none(), st.integers(0, 2**64 - 1).map(lambda h: "_dd.p.tid=%016x" % h), st.sampled_from(
        ["_dd.p.tid=6548F5B200000000", "_dd.p.tid=6548f5b20000000g", "_dd.p.tid=0x48f5b200000000"])),
    st.sampled_from([None, "", "synthetics"]),
    st.sampled_from([None, "-1", "0", "1", "2", "x"]),
)
def test_the_two_usual_tag_headers_give_what_tags_state_gives(raw_tags, origin, raw_priority) -> None:
    # extract_span_context decides "no tags" and "the tid alone" itself; _tags_state is the rule.
    headers = {"x-datadog-trace-id": "9", "x-datadog-parent-id": "2", "x-datadog-tags": raw_tags,
               "x-datadog-origin": origin, "x-datadog-sampling-priority": raw_priority}
    got = datadog.extract_span_context({k: v for k, v in headers.items() if v is not None}.get)
    priority = ids.parse_priority(raw_priority) if raw_priority is not None else None
    high, dd_value = datadog._tags_state(raw_tags, origin or None, 1 if priority is None else priority)
    assert got is not None
    assert got.trace_id == (high << 64) | 9 and dict(got.trace_state) == {"dd": dd_value}
