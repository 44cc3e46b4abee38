"""Datadog's precedence between styles (DESIGN §4), the order from the environment, and loading
through OTel's own ``opentelemetry.propagate`` (``OTEL_PROPAGATORS``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Dict

os.environ.setdefault("DD_INSTRUMENTATION_TELEMETRY_ENABLED", "false")

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace import Link, SpanContext, TraceFlags, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from otel_dd_lambda import config
from otel_dd_lambda.propagators import (
    EXTRACTED_LINKS_KEY,
    DatadogCompositePropagator,
    DatadogPropagator,
    XRayPropagator,
    get_extracted_links,
    precedence,
)
from otel_dd_lambda.propagators import datadog as _dd
from otel_dd_lambda.propagators import tracecontext as _tc
from otel_dd_lambda.propagators import xray as _xr
from otel_dd_lambda.propagators.headers import reader
from otel_dd_lambda.propagators.precedence import resolve

DD = {"x-datadog-trace-id": "1234", "x-datadog-parent-id": "5678", "x-datadog-sampling-priority": "2",
      "x-datadog-origin": "rum", "x-datadog-tags": "_dd.p.dm=-4"}
W3C_OTHER = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
             "tracestate": "congo=t61rcWkgMzE"}
# The same trace as DD (low 64 bits 1234), a closer parent.
W3C_SAME = {"traceparent": "00-000000000000000000000000000004d2-00000000000000ff-01",
            "tracestate": "dd=s:2;o:rum;t.dm:-4,rojo=00f067aa0ba902b7"}
XRAY = {"X-Amzn-Trace-Id": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("_X_AMZN_TRACE_ID", "DD_TRACE_PROPAGATION_STYLE_EXTRACT", "DD_TRACE_PROPAGATION_STYLE_INJECT",
                 "DD_TRACE_PROPAGATION_STYLE", "OTEL_PROPAGATORS"):
        monkeypatch.delenv(name, raising=False)


def _parent(context: Context):
    return trace.get_current_span(context).get_span_context()


def _links(context: Context):
    return [(link.context.trace_id, dict(link.attributes)) for link in get_extracted_links(context)]


def test_first_valid_style_wins_and_others_become_links() -> None:
    context = DatadogCompositePropagator().extract({**DD, **W3C_OTHER, **XRAY})
    assert _parent(context).trace_id == 1234 and _parent(context).span_id == 5678
    assert _links(context) == [
        (0x0AF7651916CD43DD8448EB211C80319C, {"reason": "terminated_context", "context_headers": "tracecontext"}),
        (0x5759E988BD862E3FE1BE46A994272793, {"reason": "terminated_context", "context_headers": "xray"}),
    ]
    # Links travel in the Context under the documented key.
    assert len(context.get(EXTRACTED_LINKS_KEY)) == 2


def test_an_invalid_first_style_is_skipped() -> None:
    context = DatadogCompositePropagator().extract({"x-datadog-trace-id": "0", "x-datadog-parent-id": "1", **W3C_OTHER})
    assert _parent(context).trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert _links(context) == []


def test_w3c_with_the_same_trace_supplies_the_closer_parent() -> None:
    context = DatadogCompositePropagator().extract({**DD, **W3C_SAME})
    parent = _parent(context)
    assert (parent.trace_id, parent.span_id) == (1234, 0xFF)
    # Datadog's parent id is kept as p: (exported as _dd.parent_id); priority/origin from Datadog;
    # the other vendor's member is kept.
    assert parent.trace_state.get("dd") == "p:000000000000162e;s:2;o:rum;t.dm:-4"
    assert parent.trace_state.get("rojo") == "00f067aa0ba902b7"
    assert _links(context) == []


def test_w3c_last_parent_wins_over_the_datadog_parent_id() -> None:
    w3c = {**W3C_SAME, "tracestate": "dd=s:2;p:00000000000000aa"}
    parent = _parent(DatadogCompositePropagator().extract({**DD, **w3c}))
    assert parent.trace_state.get("dd").startswith("p:00000000000000aa;")


def test_same_span_keeps_other_vendors_like_ddtrace() -> None:
    w3c = {"traceparent": "00-000000000000000000000000000004d2-000000000000162e-01",
           "tracestate": "dd=s:2,congo=t61rcWkgMzE"}
    parent = _parent(DatadogCompositePropagator().extract({**DD, **w3c}))
    assert parent.span_id == 5678 and parent.trace_state.get("congo") == "t61rcWkgMzE"
    out: Dict[str, str] = {}
    DatadogCompositePropagator().inject(out, trace.set_span_in_context(trace.NonRecordingSpan(parent)))
    assert out["tracestate"].endswith(",congo=t61rcWkgMzE")
    assert out["tracestate"].startswith("dd=p:000000000000162e;s:2;o:rum")


def test_order_from_dd_trace_propagation_style_extract(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DD_TRACE_PROPAGATION_STYLE_EXTRACT", "tracecontext,datadog")
    monkeypatch.setenv("OTEL_PROPAGATORS", "xray")  # Datadog's variable comes first
    context = DatadogCompositePropagator().extract({**DD, **W3C_OTHER})
    assert _parent(context).trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert _links(context) == [(1234, {"reason": "terminated_context", "context_headers": "datadog"})]


def test_order_from_otel_propagators(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_PROPAGATORS", "xray,datadog")
    assert config.propagation_styles("extract") == ("xray", "xray-lambda", "datadog")
    context = DatadogCompositePropagator().extract({**DD, **XRAY})
    assert _parent(context).trace_id == 0x5759E988BD862E3FE1BE46A994272793


def test_style_parsing() -> None:
    env = {"DD_TRACE_PROPAGATION_STYLE": "Datadog, W3C"}
    assert config.propagation_styles("inject", env) == ("datadog", "tracecontext")
    assert config.propagation_styles("extract", {"DD_TRACE_PROPAGATION_STYLE_EXTRACT": "none"}) == ()
    assert config.propagation_styles("extract", {"OTEL_PROPAGATORS": "datadog_composite"}) == config.DEFAULT_STYLES
    assert config.propagation_styles("extract", {"OTEL_PROPAGATORS": "b3multi,jaeger"}) == config.DEFAULT_STYLES
    assert config.propagation_styles("extract", {}) == config.DEFAULT_STYLES


def test_default_order_puts_lambda_env_last(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-68a1b2c3-0000000011112222aaaabbbb;Parent=1111222233334444;Sampled=1")
    context = DatadogCompositePropagator().extract(dict(DD))
    assert _parent(context).trace_id == 1234
    assert _links(context)[0][1]["context_headers"] == "xray-lambda"


# ------------------------------------------------------------------ inside OTel's CompositePropagator


def test_our_datadog_propagator_never_overrides_an_earlier_context() -> None:
    composite = CompositePropagator([TraceContextTextMapPropagator(), DatadogPropagator()])
    context = composite.extract({**DD, **W3C_OTHER})
    assert _parent(context).trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert _links(context) == [(1234, {"reason": "terminated_context", "context_headers": "datadog"})]


def test_known_limitation_otel_composite_lets_the_last_propagator_win() -> None:
    # datadog first, then OTel's W3C: OTel's propagator overwrites our context (documented in
    # the composite module); datadog_composite keeps Datadog's precedence instead.
    composite = CompositePropagator([DatadogPropagator(), TraceContextTextMapPropagator()])
    assert _parent(composite.extract({**DD, **W3C_OTHER})).trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    ours = DatadogCompositePropagator(("datadog", "tracecontext"))
    assert _parent(ours.extract({**DD, **W3C_OTHER})).trace_id == 1234


def test_xray_propagator_adds_links_inside_otel_composite() -> None:
    composite = CompositePropagator([DatadogPropagator(), XRayPropagator(False)])
    context = composite.extract({**DD, **XRAY})
    assert _parent(context).trace_id == 1234
    assert _links(context)[0][1]["context_headers"] == "xray"


_SUBPROCESS = textwrap.dedent(
    """
    import json, os
    from ddtrace import config as dd_config
    from ddtrace.propagation.http import HTTPPropagator
    from ddtrace.trace import Context as DDContext
    from opentelemetry import propagate, trace
    from otel_dd_lambda.propagators import get_extracted_links

    dd = DDContext(trace_id=(0x68a1b2c3 << 96) | 77, span_id=88, sampling_priority=2, dd_origin="rum",
                   meta={"_dd.p.dm": "-4"})
    headers = {}
    dd_config._propagation_style_inject = ["datadog", "tracecontext"]  # ddtrace writes the carrier
    HTTPPropagator.inject(dd, headers)
    textmap = propagate.get_global_textmap()
    context = propagate.extract(headers)
    sc = trace.get_current_span(context).get_span_context()
    out = {}
    propagate.inject(out, context)
    print(json.dumps({
        "propagators": [type(p).__module__ + "." + type(p).__name__
                        for p in getattr(textmap, "_propagators", [textmap])],
        "trace_id": sc.trace_id, "span_id": sc.span_id, "sampled": bool(sc.trace_flags.sampled),
        "dd": sc.trace_state.get("dd"), "links": len(get_extracted_links(context)), "out": out,
    }))
    """
)


def _run_with(env_overrides: Dict[str, str]) -> dict:
    ours = ("DD_TRACE_PROPAGATION", "OTEL_PROPAGATORS", "_X_AMZN")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    env.update(env_overrides)
    proc = subprocess.run([sys.executable, "-c", _SUBPROCESS], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("propagators", ["datadog,tracecontext,xray", "datadog_composite"])
def test_otel_propagators_env_through_opentelemetry_propagate(propagators: str) -> None:
    result = _run_with({"OTEL_PROPAGATORS": propagators})
    if propagators == "datadog_composite":
        assert result["propagators"] == ["otel_dd_lambda.propagators.composite.DatadogCompositePropagator"]
    else:
        assert result["propagators"][0] == "otel_dd_lambda.propagators.datadog.DatadogPropagator"
        assert len(result["propagators"]) == 3
    assert result["trace_id"] == (0x68A1B2C3 << 96) | 77 and result["span_id"] == 88 and result["sampled"]
    assert result["links"] == 0
    out = {k.lower(): v for k, v in result["out"].items()}
    assert out["x-datadog-trace-id"] == "77" and out["x-datadog-sampling-priority"] == "2"
    assert out["x-datadog-origin"] == "rum" and "_dd.p.tid=68a1b2c300000000" in out["x-datadog-tags"]
    assert out["traceparent"] == "00-%032x-%016x-01" % ((0x68A1B2C3 << 96) | 77, 88)
    assert "s:2" in out["tracestate"] and "o:rum" in out["tracestate"]
    assert out["x-amzn-trace-id"].startswith("Root=1-68a1b2c3-0000000000000000")
    assert "Sampled=1" in out["x-amzn-trace-id"]


def test_datadog_composite_entry_point_takes_order_from_dd_variable() -> None:
    result = _run_with({"OTEL_PROPAGATORS": "datadog_composite", "DD_TRACE_PROPAGATION_STYLE_EXTRACT": "tracecontext"})
    assert result["propagators"] == ["otel_dd_lambda.propagators.composite.DatadogCompositePropagator"]
    assert result["trace_id"] == (0x68A1B2C3 << 96) | 77


# ------------------------------------------------------------------ the fast path equals the rule


_SAME_SPAN = "00-000000000000000000000000000004d2-000000000000162e"  # the DD context of DD
_W3C_VARIANTS = {
    "none": {},
    "same-span-dd-only": {"traceparent": _SAME_SPAN + "-01", "tracestate": "dd=s:2;o:rum"},
    "same-span-no-state": {"traceparent": _SAME_SPAN + "-00"},
    "same-span-vendors": {"traceparent": _SAME_SPAN + "-01", "tracestate": "dd=s:2,rojo=1"},
    "same-span-odd-state": {"traceparent": _SAME_SPAN + "-01", "tracestate": " dd=s:2 , "},
    "closer-parent": W3C_SAME,
    "other-trace": W3C_OTHER,
    "invalid": {"traceparent": "00-zz", "tracestate": "dd=s:1"},
}


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(sorted(_W3C_VARIANTS)), st.booleans(), st.booleans(),
       st.permutations(["datadog", "tracecontext", "xray"]))
def test_composite_fast_path_matches_the_general_rule(variant: str, with_dd: bool, with_xray: bool, order) -> None:
    carrier = {**(DD if with_dd else {}), **_W3C_VARIANTS[variant], **(XRAY if with_xray else {})}
    extractors = {"datadog": _dd.extract_span_context, "tracecontext": _tc.extract_span_context,
                  "xray": _xr.extract_span_context}
    get = reader(carrier)
    found = [(s, extractors[s](get)) for s in order]
    expected = resolve([(s, sc) for s, sc in found if sc is not None]) if any(sc for _, sc in found) else (None, [])
    got = DatadogCompositePropagator(tuple(order), ()).extract_from_reader(reader(carrier))
    assert got[0] == expected[0]
    if got[0] is not None:
        assert dict(got[0].trace_state) == dict(expected[0].trace_state)
    assert [(link.context, dict(link.attributes)) for link in got[1]] == [
        (link.context, dict(link.attributes)) for link in expected[1]
    ]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(_W3C_VARIANTS)), st.booleans(), st.booleans(), st.booleans(),
       st.permutations(["datadog", "tracecontext", "xray"]), st.integers(1, 3))
def test_composite_dict_fast_path_matches_the_general_rule(variant: str, with_dd: bool, with_xray: bool, title: bool,
                                                           order, count: int) -> None:
    # extract_from_carrier decides a Datadog-first dict carrier without the per-style loop when
    # the later styles add nothing: the same answer as the loop over a reader, in every case.
    carrier = {**(DD if with_dd else {}), **_W3C_VARIANTS[variant], **(XRAY if with_xray else {})}
    if title:
        carrier = {k.title(): v for k, v in carrier.items()}
    styles = tuple(order[:count])
    composite = DatadogCompositePropagator(styles, ())
    got = composite.extract_from_carrier(carrier)
    expected = composite.extract_from_reader(reader(carrier))
    assert got[0] == expected[0]
    if got[0] is not None:
        assert dict(got[0].trace_state) == dict(expected[0].trace_state)
    assert [(link.context, dict(link.attributes)) for link in got[1]] == [
        (link.context, dict(link.attributes)) for link in expected[1]
    ]


# ------------------------------------------------------------------ OTel objects, fast and public
# precedence builds TraceState, SpanContext and Link without their validating constructors when a
# probe finds OTel's known layout; on another layout it takes the public constructors. Both paths
# must give the same objects.


_CARRIERS = [
    DD,
    {**DD, **W3C_SAME},
    {**DD, **W3C_OTHER, **XRAY},
    {**W3C_OTHER, "x-datadog-trace-id": "1", "x-datadog-parent-id": "2",
     "x-datadog-tags": "_dd.p.tid=6548f5b200000000"},
    {"x-datadog-trace-id": "7", "x-datadog-parent-id": "8"},
    XRAY,
]


def _described(extracted):
    def context(c: SpanContext):
        return (type(c), tuple(c), type(c.trace_state), list(c.trace_state.items()), c.trace_state.to_header())

    parent, links = extracted
    return (context(parent) if parent is not None else None,
            [(type(link), context(link.context), dict(link.attributes or {})) for link in links])


def test_the_layout_probes_find_the_pinned_otel() -> None:
    # Else the fast paths would never run in these tests.
    assert precedence.FAST_SPAN_CONTEXT and precedence.FAST_LINK


def test_the_link_probe_notices_another_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    class LinkWithMore(Link):
        def __init__(self, context: SpanContext, attributes=None) -> None:
            super().__init__(context, attributes)
            self._more = 1

    monkeypatch.setattr(precedence, "Link", LinkWithMore)
    assert not precedence._link_layout_known()


def test_the_span_context_probe_notices_another_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    class StateElsewhere(TraceState):
        def __init__(self, entries=None) -> None:
            super().__init__(entries)
            self._members = self.__dict__.pop("_dict")

    monkeypatch.setattr(precedence, "TraceState", StateElsewhere)
    assert not precedence._span_context_layout_known()


@pytest.mark.parametrize("carrier", _CARRIERS, ids=range(len(_CARRIERS)))
def test_public_constructors_give_the_same_contexts(monkeypatch: pytest.MonkeyPatch, carrier: Dict[str, str]) -> None:
    composite = DatadogCompositePropagator()
    fast = _described(composite.extract_from_carrier(dict(carrier)))
    monkeypatch.setattr(precedence, "FAST_SPAN_CONTEXT", False)
    monkeypatch.setattr(precedence, "FAST_LINK", False)
    assert _described(composite.extract_from_carrier(dict(carrier))) == fast


def test_public_link_constructor_gives_the_same_link(monkeypatch: pytest.MonkeyPatch) -> None:
    span_context = SpanContext(5, 6, True, TraceFlags(1), TraceState([("dd", "s:1")]), )
    fast = precedence.make_link(span_context, {"messaging.message.id": "m-1"})
    monkeypatch.setattr(precedence, "FAST_LINK", False)
    public = precedence.make_link(span_context, {"messaging.message.id": "m-1"})
    assert type(fast) is type(public) is Link and vars(fast) == vars(public)
    assert fast.attributes == public.attributes and fast.context is public.context
