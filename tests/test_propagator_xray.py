"""X-Ray: differential against aws-xray-sdk's ``TraceHeader`` and OTel's ``AwsXRayPropagator``,
plus Lambda's ``_X_AMZN_TRACE_ID`` rules (DESIGN §4)."""

from __future__ import annotations

from typing import Dict

import pytest
from aws_xray_sdk.core.models.trace_header import TraceHeader
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.aws import AwsXRayPropagator
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from otel_dd_lambda import ids
from otel_dd_lambda.propagators import DatadogCompositePropagator, XRayPropagator, xray

SETTINGS = settings(max_examples=150, deadline=None)
U64 = (1 << 64) - 1

trace_ids = st.integers(1, (1 << 128) - 1)
span_ids = st.integers(1, U64)
lineage = st.from_regex(r"[0-9a-f]{8}:[0-9]{1,2}(\|[0-9a-f]{8}:[0-9]{1,2}){0,2}", fullmatch=True)


def _span_context(trace_id: int, span_id: int, sampled: bool) -> SpanContext:
    return SpanContext(trace_id, span_id, True, TraceFlags(1 if sampled else 0))


def _ctx(span_context: SpanContext) -> Context:
    return trace.set_span_in_context(NonRecordingSpan(span_context))


def _extracted(context: Context) -> SpanContext:
    return trace.get_current_span(context).get_span_context()


@pytest.fixture(autouse=True)
def _no_lambda_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("_X_AMZN_TRACE_ID", raising=False)


# ------------------------------------------------------------------ aws-xray-sdk


@SETTINGS
@given(trace_ids, span_ids, st.booleans(), st.one_of(st.none(), lineage))
def test_ours_read_by_aws_xray_sdk(trace_id: int, span_id: int, sampled: bool, lin) -> None:
    carrier = {"X-Amzn-Trace-Id": "Root=%s;Parent=%016x;Sampled=%d%s" % (
        ids.format_xray_trace_id(trace_id), span_id, sampled, ";Lineage=" + lin if lin else "")}
    # Through our propagator: extract, then re-inject (Lineage must come back).
    out: Dict[str, str] = {}
    XRayPropagator(use_lambda_environment=False).inject(out, XRayPropagator(False).extract(carrier))
    header = TraceHeader.from_header_str(out["X-Amzn-Trace-Id"])
    assert header.root == ids.format_xray_trace_id(trace_id)
    assert int(header.parent, 16) == span_id
    assert header.sampled == (1 if sampled else 0)
    assert header.data == ({"Lineage": lin} if lin else {})


@SETTINGS
@given(trace_ids, span_ids, st.sampled_from([0, 1, "?", None]), st.one_of(st.none(), lineage))
def test_aws_xray_sdk_read_by_ours(trace_id: int, span_id: int, sampled, lin) -> None:
    data = {"Lineage": lin} if lin else None
    value = TraceHeader(ids.format_xray_trace_id(trace_id), "%016x" % span_id, sampled, data).to_header_str()
    span_context = xray.extract_span_context(lambda name: value if name == "x-amzn-trace-id" else None)
    assert span_context is not None
    assert (span_context.trace_id, span_context.span_id) == (trace_id, span_id)
    # Only an explicit Sampled=0 unsamples; missing or "?" (undecided) is sampled.
    assert span_context.trace_flags.sampled is (sampled != 0)
    assert xray.header_value(span_context).endswith(";Lineage=" + lin if lin else "Sampled=%d" % (sampled != 0))


# ------------------------------------------------------------------ OTel's AwsXRayPropagator


@SETTINGS
@given(trace_ids, span_ids, st.booleans())
def test_upstream_propagator_reads_ours(trace_id: int, span_id: int, sampled: bool) -> None:
    out: Dict[str, str] = {}
    XRayPropagator(False).inject(out, _ctx(_span_context(trace_id, span_id, sampled)))
    got = _extracted(AwsXRayPropagator().extract(out))
    assert (got.trace_id, got.span_id, got.trace_flags.sampled) == (trace_id, span_id, sampled)


@SETTINGS
@given(trace_ids, span_ids, st.booleans(), st.sampled_from(["X-Amzn-Trace-Id", "x-amzn-trace-id", "X-AMZN-TRACE-ID"]))
def test_ours_reads_upstream_in_any_case(trace_id: int, span_id: int, sampled: bool, name: str) -> None:
    out: Dict[str, str] = {}
    AwsXRayPropagator().inject(out, _ctx(_span_context(trace_id, span_id, sampled)))
    carrier = {name: out["X-Amzn-Trace-Id"]}
    got = _extracted(XRayPropagator(False).extract(carrier))
    assert (got.trace_id, got.span_id, got.trace_flags.sampled) == (trace_id, span_id, sampled)


def test_upstream_misses_a_lowercase_header_ours_does_not() -> None:
    carrier = {"x-amzn-trace-id": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"}
    assert not _extracted(AwsXRayPropagator().extract(carrier)).is_valid
    assert _extracted(XRayPropagator(False).extract(carrier)).trace_id == 0x5759E988BD862E3FE1BE46A994272793


# ------------------------------------------------------------------ header rules


def test_missing_sampled_is_sampled_and_unknown_keys_survive() -> None:
    value = ("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Lineage=a87bd80c:1|68fd508a:5;Foo=bar;"
             "Self=1-aaaaaaaa-bbbbbbbbbbbbbbbbbbbbbbbb")
    span_context = _extracted(XRayPropagator(False).extract({"X-Amzn-Trace-Id": value}))
    assert span_context.trace_flags.sampled
    out: Dict[str, str] = {}
    XRayPropagator(False).inject(out, _ctx(span_context))
    assert out["X-Amzn-Trace-Id"] == (
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;"
        "Lineage=a87bd80c:1|68fd508a:5;Foo=bar"
    )


def test_lineage_survives_a_hop_through_an_sdk_child_span() -> None:
    from opentelemetry.sdk.trace import TracerProvider

    value = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a87bd80c:1"
    propagator = DatadogCompositePropagator(("xray",), ("datadog", "tracecontext", "xray"))
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("child", context=propagator.extract({"X-Amzn-Trace-Id": value})) as span:
        out: Dict[str, str] = {}
        propagator.inject(out)
    assert out["X-Amzn-Trace-Id"] == (
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=%016x;Sampled=1;Lineage=a87bd80c:1"
        % span.get_span_context().span_id
    )
    # The same trace in the other formats, Datadog's id being the low 64 bits.
    assert out["x-datadog-trace-id"] == str(0xE1BE46A994272793)
    assert out["traceparent"].startswith("00-5759e988bd862e3fe1be46a994272793-")


@pytest.mark.parametrize(
    "value",
    [
        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",  # no Parent
        "Parent=53995c3f42cd8ad8;Sampled=1",  # no Root
        "Root=2-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",  # version
        "Root=1-5759e988-bd862e3fe1be46a99427279;Parent=53995c3f42cd8ad8",  # short
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=0000000000000000",  # zero parent
        "Root=1-00000000-000000000000000000000000;Parent=53995c3f42cd8ad8",  # zero trace
        "Root=1-5759e988-bd862e3fe1be46a99427279g;Parent=53995c3f42cd8ad8",  # not hex
        "",
    ],
)
def test_invalid_headers_are_no_context(value: str) -> None:
    assert not _extracted(XRayPropagator(False).extract({"X-Amzn-Trace-Id": value})).is_valid


# ------------------------------------------------------------------ Lambda's _X_AMZN_TRACE_ID

LAMBDA_SAMPLED = "Root=1-68a1b2c3-0000000011112222aaaabbbb;Parent=1111222233334444;Sampled=1;Lineage=a87bd80c:1"
LAMBDA_UNSAMPLED = "Root=1-68a1b2c3-0000000011112222aaaabbbb;Parent=1111222233334444;Sampled=0"
EVENT = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}


def test_lambda_env_sampled_is_a_last_resort_parent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_X_AMZN_TRACE_ID", LAMBDA_SAMPLED)
    got = _extracted(XRayPropagator().extract({}))
    assert got.trace_id == 0x68A1B2C30000000011112222AAAABBBB and got.span_id == 0x1111222233334444
    assert got.trace_flags.sampled
    assert got.trace_state.get("dd") == "s:2"  # user keep, as datadog_lambda gives it
    composite = _extracted(DatadogCompositePropagator().extract({}))
    assert composite.trace_id == got.trace_id


def test_lambda_env_unsampled_gives_no_context(monkeypatch: pytest.MonkeyPatch) -> None:
    # Sampled=0 there means "active tracing off": the function starts its own trace.
    monkeypatch.setenv("_X_AMZN_TRACE_ID", LAMBDA_UNSAMPLED)
    assert not _extracted(XRayPropagator().extract({})).is_valid
    assert not _extracted(DatadogCompositePropagator().extract({})).is_valid
    assert xray.lambda_span_context() is None


@pytest.mark.parametrize("env", [LAMBDA_SAMPLED, LAMBDA_UNSAMPLED])
def test_lambda_env_never_overrides_or_unsamples_the_event_context(monkeypatch: pytest.MonkeyPatch, env: str) -> None:
    monkeypatch.setenv("_X_AMZN_TRACE_ID", env)
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    # OTel's own composite order: W3C first, then ours.
    context = XRayPropagator().extract(EVENT, TraceContextTextMapPropagator().extract(EVENT))
    got = _extracted(context)
    assert got.trace_id == 0x0AF7651916CD43DD8448EB211C80319C and got.trace_flags.sampled
    got = _extracted(DatadogCompositePropagator().extract(EVENT))
    assert got.trace_id == 0x0AF7651916CD43DD8448EB211C80319C and got.trace_flags.sampled


def test_lambda_env_not_read_when_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_X_AMZN_TRACE_ID", LAMBDA_SAMPLED)
    assert not _extracted(XRayPropagator(use_lambda_environment=False).extract({})).is_valid
    assert not _extracted(DatadogCompositePropagator(("datadog", "xray"), ()).extract({})).is_valid


def test_sampled_conversions() -> None:
    assert ids.parse_xray_sampled("1") is True and ids.parse_xray_sampled("0") is False
    assert ids.parse_xray_sampled("?") is None and ids.parse_xray_sampled(None) is None
    assert [ids.xray_sampled_from_priority(p) for p in (-1, 0, 1, 2)] == ["0", "0", "1", "1"]
    assert ids.xray_sampled_to_priority(True) == 2 and ids.xray_sampled_to_priority(False) == -1
    assert ids.xray_sampled_to_priority(None) == 2


def test_header_names_are_the_upstream_ones_and_its_module_loads_lazily() -> None:
    # xray.py copies two constants so that the composite (and the Lambda event path) need not
    # import the upstream propagator module; XRayPropagator still subclasses the upstream class.
    from opentelemetry.propagators.aws import aws_xray_propagator as upstream

    assert xray.TRACE_HEADER_KEY == upstream.TRACE_HEADER_KEY
    assert xray.ENV_VAR == upstream.AWS_TRACE_HEADER_ENV_KEY
    assert issubclass(XRayPropagator, AwsXRayPropagator)
    code = ("import sys; import otel_dd_lambda.propagators.composite, otel_dd_lambda.extract, "
            "otel_dd_lambda.propagators.ddstate; "
            "print(sorted(m for m in sys.modules if m.startswith('opentelemetry.propagators.aws')))")
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"


def test_ddstate_alone_loads_no_propagator() -> None:
    # The exporter imports propagators.ddstate: the package __init__ is lazy (PEP 562).
    import subprocess
    import sys

    code = ("import sys; import otel_dd_lambda.propagators.ddstate; "
            "print(sorted(m for m in sys.modules if m.startswith('otel_dd_lambda.propagators.')))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "['otel_dd_lambda.propagators.ddstate']"
