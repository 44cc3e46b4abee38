"""The ID model (DESIGN §3): OTel 128-bit <-> Datadog <-> X-Ray, sampling, and the IdGenerator
(directly and through the OTel SDK's own configuration loading)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

os.environ.setdefault("DD_INSTRUMENTATION_TELEMETRY_ENABLED", "false")

from aws_xray_sdk.core.models.trace_header import TraceHeader
from aws_xray_sdk.core.models.traceid import TraceId
from ddtrace.propagation.http import HTTPPropagator
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_dd_lambda import ids

SETTINGS = settings(max_examples=200, deadline=None)
U64 = (1 << 64) - 1


@SETTINGS
@given(st.integers(1, (1 << 128) - 1))
def test_otel_datadog_round_trip(trace_id: int) -> None:
    low, tid = ids.dd_trace_id(trace_id), ids.format_tid(trace_id)
    assert 0 <= low <= U64
    assert ids.trace_id_from_dd(low, ids.parse_tid(tid) if tid else None) == trace_id
    assert ids.parse_dd_id(ids.format_dd_id(trace_id)) in (None, low)  # low 0 is not a valid header
    if tid:
        assert len(tid) == 16 and tid == tid.lower()


@SETTINGS
@given(st.integers(1, (1 << 128) - 1))
def test_otel_xray_round_trip(trace_id: int) -> None:
    root = ids.format_xray_trace_id(trace_id)
    assert len(root) == 35 and ids.parse_xray_trace_id(root) == trace_id
    assert ids.parse_xray_trace_id(root.upper().replace("X", "x")) in (trace_id, None)
    assert ids.dd_trace_id_from_xray_root(trace_id) == int(root[-16:], 16) & 0x7FFF_FFFF_FFFF_FFFF


def test_parsers_reject_bad_shapes() -> None:
    assert ids.parse_tid("ABCDEF0123456789") is None  # ddtrace requires lowercase
    assert ids.parse_tid("abc") is None and ids.parse_tid(None) is None
    assert ids.parse_xray_trace_id("1-5759e988-bd862e3fe1be46a99427279") is None
    assert ids.parse_xray_trace_id("2-5759e988-bd862e3fe1be46a994272793") is None
    assert ids.parse_hex_span_id("0000000000000000") is None
    assert ids.parse_hex_span_id("53995c3f42cd8ad8") == 0x53995C3F42CD8AD8
    assert ids.format_tid(5) is None


def test_sampling_conversions() -> None:
    for priority in (-1, 0, 1, 2):
        flags = ids.trace_flags_from_priority(priority)
        assert flags == (1 if priority > 0 else 0)
        assert ids.sampled_from_priority(priority) is (priority > 0)
        assert ids.xray_sampled_from_priority(priority) == ("1" if priority > 0 else "0")
        assert ids.priority_from_trace_flags(flags) == (1 if priority > 0 else 0)
    assert ids.priority_from_sampled(True) == 1 and ids.priority_from_sampled(False) == 0
    assert [ids.parse_priority(v) for v in ("-1", "0", "1", "2", " 2", "10", "-", "x", "", "1000", "\u0661")] == [
        -1, 0, 1, 2, 2, 10, None, None, None, None, None]
    assert ids.format_xray_sampled(True) == "1" and ids.format_xray_sampled(False) == "0"


def _check_valid_everywhere(trace_id: int) -> None:
    # X-Ray: the SDK's own header parser keeps the root; the top 32 bits are epoch seconds.
    root = ids.format_xray_trace_id(trace_id)
    header = TraceHeader.from_header_str("Root=%s;Parent=53995c3f42cd8ad8;Sampled=1" % root)
    assert header.root == root
    assert abs(int(root[2:10], 16) - int(TraceId().to_id()[2:10], 16)) < 3600
    # Datadog: ddtrace rebuilds the same 128-bit id from our headers.
    low, tid = ids.dd_trace_id(trace_id), ids.format_tid(trace_id)
    context = HTTPPropagator.extract(
        {"x-datadog-trace-id": str(low), "x-datadog-parent-id": "1", "x-datadog-tags": "_dd.p.tid=" + tid}
    )
    assert context.trace_id == trace_id
    # Datadog's X-Ray integration masks to 63 bits: bit 63 is zero, so nothing is lost.
    assert ids.dd_trace_id_from_xray_root(trace_id) == low
    # W3C: non-zero, 128 bits.
    assert 0 < trace_id < 1 << 128 and (trace_id >> 64) & 0xFFFF_FFFF == 0


def test_generated_ids_are_valid_in_all_three() -> None:
    generator = ids.DatadogXRayIdGenerator()
    for _ in range(200):
        _check_valid_everywhere(generator.generate_trace_id())
        span_id = generator.generate_span_id()
        assert 0 < span_id <= U64
    assert len({generator.generate_trace_id() for _ in range(1000)}) == 1000


def test_generator_through_the_sdk_configuration_loader() -> None:
    from opentelemetry.sdk._configuration import _import_id_generator
    from opentelemetry.sdk.trace import TracerProvider

    generator = _import_id_generator("datadog_xray")
    assert isinstance(generator, ids.DatadogXRayIdGenerator)
    tracer = TracerProvider(id_generator=generator).get_tracer("t")
    with tracer.start_as_current_span("root") as span:
        _check_valid_everywhere(span.get_span_context().trace_id)


def test_generator_through_otel_python_id_generator_env() -> None:
    # The SDK's auto-configuration (what opentelemetry-instrument runs) in a fresh process.
    code = textwrap.dedent(
        """
        from opentelemetry import trace
        from opentelemetry.sdk._configuration import _OTelSDKConfigurator
        _OTelSDKConfigurator().configure()
        provider = trace.get_tracer_provider()
        print(type(provider.id_generator).__module__, type(provider.id_generator).__name__)
        with provider.get_tracer("t").start_as_current_span("s") as span:
            print(span.get_span_context().trace_id)
        """
    )
    env = dict(os.environ, OTEL_PYTHON_ID_GENERATOR="datadog_xray", OTEL_TRACES_EXPORTER="none",
               OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    kind, trace_id = proc.stdout.split("\n")[:2]
    assert kind == "otel_dd_lambda.ids DatadogXRayIdGenerator"
    _check_valid_everywhere(int(trace_id))


def test_importing_ids_does_not_import_the_sdk() -> None:
    code = "import sys, otel_dd_lambda.ids, otel_dd_lambda.propagators; print('opentelemetry.sdk.trace' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout.strip()
    assert out == "False"
