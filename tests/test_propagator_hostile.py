"""Hostile input: wrong types, out-of-range ids, unicode digits, control characters, huge
headers, getters and carriers that raise. Never an exception; no context; a debug log."""

from __future__ import annotations

import logging
from typing import Any, Dict, List

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import Getter

from otel_dd_lambda import ids
from otel_dd_lambda.propagators import (
    DatadogCompositePropagator,
    DatadogPropagator,
    XRayPropagator,
    datadog,
    tracecontext,
)
from otel_dd_lambda.propagators.headers import MAX_HEADER_CHARS, reader

SETTINGS = settings(
    max_examples=200, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
LOGGER = "otel_dd_lambda.propagators"
NAMES = ["x-datadog-trace-id", "x-datadog-parent-id", "x-datadog-sampling-priority", "x-datadog-origin",
         "x-datadog-tags", "traceparent", "tracestate", "X-Amzn-Trace-Id"]
PROPAGATORS = [
    DatadogCompositePropagator(),
    DatadogPropagator(),
    XRayPropagator(use_lambda_environment=False),
    CompositePropagator([DatadogPropagator(), XRayPropagator(False)]),  # ours only: OTel W3C raises on junk
]


@pytest.fixture(autouse=True)
def _no_lambda_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("_X_AMZN_TRACE_ID", raising=False)


class RaisingDict(dict):
    def items(self):  # type: ignore[override]
        raise RuntimeError("hostile items")

    def get(self, *args: Any):  # type: ignore[override]
        raise RuntimeError("hostile get")

    def keys(self):  # type: ignore[override]
        raise RuntimeError("hostile keys")


class RaisingGetter(Getter):
    def get(self, carrier: Any, key: str):
        raise ValueError("hostile getter")

    def keys(self, carrier: Any) -> List[str]:
        raise ValueError("hostile keys")


class EndlessKeysGetter(Getter):
    def get(self, carrier: Any, key: str):
        return None

    def keys(self, carrier: Any):
        while True:
            yield "x"


class WeirdStr(str):
    def __str__(self) -> str:
        raise RuntimeError("hostile __str__")

    def lower(self) -> str:  # type: ignore[override]
        raise RuntimeError("hostile lower")


junk_scalar = st.one_of(
    st.none(), st.integers(), st.floats(allow_nan=True), st.booleans(), st.binary(max_size=64),
    st.text(max_size=64), st.text(st.characters(min_codepoint=0, max_codepoint=0x1F), max_size=20),
    st.builds(WeirdStr, st.text(max_size=20)),
)
junk_value = st.one_of(junk_scalar, st.lists(junk_scalar, max_size=3), st.tuples(junk_scalar),
                       st.dictionaries(st.text(max_size=5), junk_scalar, max_size=3))
junk_carrier = st.one_of(
    junk_scalar,
    st.lists(junk_scalar, max_size=3),
    st.dictionaries(st.sampled_from(NAMES) | st.text(max_size=10) | st.integers(), junk_value, max_size=8),
    st.builds(RaisingDict),
)


def _assert_debug_only(caplog: pytest.LogCaptureFixture) -> None:
    assert all(r.levelno <= logging.DEBUG for r in caplog.records if r.name.startswith("otel_dd_lambda")), [
        r.getMessage() for r in caplog.records if r.levelno > logging.DEBUG
    ]


@SETTINGS
@given(junk_carrier)
def test_any_carrier_never_raises(caplog: pytest.LogCaptureFixture, carrier: Any) -> None:
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        for propagator in PROPAGATORS:
            context = propagator.extract(carrier)
            assert isinstance(context, Context)
            for getter in (RaisingGetter(), EndlessKeysGetter()):
                extracted = propagator.extract(carrier, getter=getter)
                assert not trace.get_current_span(extracted).get_span_context().is_valid
    _assert_debug_only(caplog)


bad_ids = st.one_of(
    st.just("0"), st.just("00000"), st.integers(2**64, 2**70).map(str), st.integers(max_value=-1).map(str),
    st.sampled_from(["", " ", "1 ", " 1", "+1", "0x10", "1_000", "1e3", "١٢٣", "１２", "²", "12\x00", "abc", "1.0"]),
    st.text(st.characters(whitelist_categories=["Nd"]), min_size=1, max_size=5).filter(lambda s: not s.isascii()),
    st.text(max_size=30).filter(lambda s: not (s.isascii() and s.isdigit())),
    st.just("9" * 5000),
)


@SETTINGS
@given(bad_ids, st.booleans())
def test_bad_datadog_ids_are_no_context(caplog: pytest.LogCaptureFixture, bad: str, in_trace_id: bool) -> None:
    headers = {"x-datadog-trace-id": "123", "x-datadog-parent-id": "456"}
    headers["x-datadog-trace-id" if in_trace_id else "x-datadog-parent-id"] = bad
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        assert not trace.get_current_span(DatadogPropagator().extract(headers)).get_span_context().is_valid
        assert DatadogCompositePropagator(("datadog",)).extract_from_reader(reader(headers)) == (None, [])
    if len(bad) <= MAX_HEADER_CHARS:  # a header over the cap is dropped before parsing
        assert any(r.levelno == logging.DEBUG for r in caplog.records)
    _assert_debug_only(caplog)


def test_id_bounds() -> None:
    assert ids.parse_dd_id("18446744073709551615") == 2**64 - 1
    assert ids.parse_dd_id("18446744073709551616") is None
    assert ids.parse_dd_id("0") is None and ids.parse_dd_id("1") == 1
    assert ids.parse_dd_id(123) is None and ids.parse_dd_id(b"123") is None and ids.parse_dd_id(None) is None


@SETTINGS
@given(st.text(max_size=600), st.text(max_size=300), st.text(max_size=100))
def test_garbage_tags_origin_priority_keep_the_context(
    caplog: pytest.LogCaptureFixture, tags: str, origin: str, priority: str
) -> None:
    headers = {"x-datadog-trace-id": "123", "x-datadog-parent-id": "456", "x-datadog-tags": tags,
               "x-datadog-origin": origin, "x-datadog-sampling-priority": priority}
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        span_context = trace.get_current_span(DatadogPropagator().extract(headers)).get_span_context()
        assert (span_context.trace_id, span_context.span_id) == (123, 456)
        # Whatever came in, what goes out is well-formed for ddtrace and W3C.
        out: Dict[str, str] = {}
        DatadogCompositePropagator(inject_styles=("datadog", "tracecontext", "xray")).inject(
            out, trace.set_span_in_context(trace.NonRecordingSpan(span_context))
        )
    assert all(v.isascii() and v.isprintable() for v in out.values())
    assert len(out.get("x-datadog-tags", "")) <= 512
    dd_member = out["tracestate"].split(",")[0]
    assert len(dd_member) <= 256 and tracecontext.parse_tracestate(out["tracestate"]).get("dd") == dd_member[3:]
    assert datadog.parse_tags(out.get("x-datadog-tags")) is not None
    _assert_debug_only(caplog)


@SETTINGS
@given(st.text(max_size=200), st.text(max_size=600))
def test_garbage_w3c_and_xray(caplog: pytest.LogCaptureFixture, traceparent: str, tracestate: str) -> None:
    headers = {"traceparent": traceparent, "tracestate": tracestate, "x-amzn-trace-id": traceparent + tracestate}
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        DatadogCompositePropagator().extract(headers)
        assert tracecontext.parse_traceparent(traceparent) is None or traceparent.strip(" \t")[:2] != "ff"
    _assert_debug_only(caplog)


@pytest.mark.parametrize(
    "traceparent",
    [
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",  # v00 must be 55 chars
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",  # uppercase
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333_-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0g",
        "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    ],
)
def test_invalid_traceparent(traceparent: str) -> None:
    assert tracecontext.parse_traceparent(traceparent) is None


def test_future_traceparent_version_is_read() -> None:
    parsed = tracecontext.parse_traceparent("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-ever")
    assert parsed == (0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, 1)


def test_huge_headers_are_refused() -> None:
    huge = "1" * (MAX_HEADER_CHARS + 1)
    assert reader({"x-datadog-trace-id": huge})("x-datadog-trace-id") is None
    assert reader({"x": [b"a" * (MAX_HEADER_CHARS + 1)]})("x") is None


def test_reader_value_shapes() -> None:
    get = reader({"A": ["1", "2"], "b": (b"3",), "c": [], "d": b"\xff", "e": WeirdStr("5"), "f": [["6"]], 7: "x"})
    assert [get(k) for k in "abcdef"] == ["1", "3", None, None, "5", None]


def test_non_dict_mappings_are_read() -> None:
    from types import MappingProxyType

    proxy = MappingProxyType({"X-Datadog-Trace-Id": "1", "X-Datadog-Parent-Id": "2"})
    assert trace.get_current_span(DatadogPropagator().extract(proxy)).get_span_context().trace_id == 1


def test_inject_with_a_raising_setter_does_not_raise(caplog: pytest.LogCaptureFixture) -> None:
    class RaisingSetter:
        def set(self, carrier: Any, key: str, value: str) -> None:
            raise RuntimeError("hostile setter")

    sc = trace.SpanContext(1, 2, False, trace.TraceFlags(1))
    context = trace.set_span_in_context(trace.NonRecordingSpan(sc))
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        for propagator in PROPAGATORS[:3]:
            propagator.inject({}, context, RaisingSetter())  # type: ignore[arg-type]
    _assert_debug_only(caplog)


@pytest.mark.parametrize("origin,tags", [(" ", ""), ("synthetics ", ""), ("rum", "_dd.p.usr=a ")])
def test_trailing_space_never_ends_the_dd_member(origin: str, tags: str) -> None:
    # Found by Hypothesis: an origin (or last tag value) ending in a space made "dd=...;o: ", an
    # invalid W3C member (a value may not end in a space) that W3C parsers then drop.
    headers = {"x-datadog-trace-id": "123", "x-datadog-parent-id": "456", "x-datadog-origin": origin,
               "x-datadog-tags": tags}
    context = DatadogCompositePropagator(("datadog",), ("datadog", "tracecontext")).extract(headers)
    out: Dict[str, str] = {}
    DatadogCompositePropagator(("datadog",), ("datadog", "tracecontext")).inject(out, context)
    dd_member = out["tracestate"].split(",")[0]
    assert not dd_member.endswith(" ")
    assert tracecontext.parse_tracestate(out["tracestate"]).get("dd") == dd_member[3:]
    assert out.get("x-datadog-origin") == origin  # the Datadog header keeps it as it came


@pytest.mark.parametrize("extra_headers", [0, 40])  # a small carrier, and an HTTP-sized one
@pytest.mark.parametrize("name", NAMES)
def test_a_str_subclass_value_is_read_as_plain_text(name: str, extra_headers: int) -> None:
    # A str subclass whose methods raise must be read through str's own methods: the guard in
    # conftest fails this test if any propagator logs an internal error on the way.
    carrier: Dict[str, Any] = {"x-datadog-trace-id": "1", "x-datadog-parent-id": "2"}
    carrier.update({"h-%d" % i: "v" for i in range(extra_headers)})
    for text in ("1", "abc", "_dd.p.tid=1"):
        carrier[name] = WeirdStr(text)
        for propagator in (DatadogCompositePropagator(), DatadogPropagator(), XRayPropagator()):
            propagator.extract(carrier)
