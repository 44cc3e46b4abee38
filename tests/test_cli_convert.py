"""``otel-dd-lambda convert``: every input format, every output format, checked by the peers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

os.environ.setdefault("DD_INSTRUMENTATION_TELEMETRY_ENABLED", "false")

import pytest
from aws_xray_sdk.core.models.trace_header import TraceHeader
from ddtrace import config as dd_config
from ddtrace.propagation.http import HTTPPropagator
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_dd_lambda import cli

TRACEPARENT = "00-68a1b2c3000000001d2b3c4d5e6f7081-2a3b4c5d6e7f8091-01"
TRACE_ID = 0x68A1B2C3000000001D2B3C4D5E6F7081
SPAN_ID = 0x2A3B4C5D6E7F8091


def _convert(capsys: pytest.CaptureFixture, *argv: str):
    code = cli.main(["convert", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _json(capsys: pytest.CaptureFixture, *argv: str) -> dict:
    code, out, err = _convert(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.fixture(autouse=True)
def _dd_styles():
    saved = (dd_config._propagation_style_extract, dd_config._propagation_style_inject)
    dd_config._propagation_style_extract = ["datadog"]
    yield
    dd_config._propagation_style_extract, dd_config._propagation_style_inject = saved


def _check_with_peers(info: dict, trace_id: int, span_id: int, priority: int) -> None:
    headers = info["headers"]
    dd = HTTPPropagator.extract({k: v for k, v in headers.items() if k.startswith("x-datadog")})
    assert (dd.trace_id, dd.span_id, dd.sampling_priority) == (trace_id, span_id, priority)
    xray = TraceHeader.from_header_str(headers["X-Amzn-Trace-Id"])
    assert xray.root == info["xray"]["root"] and int(xray.parent, 16) == span_id
    assert xray.sampled == (1 if priority > 0 else 0)
    assert headers["traceparent"] == "00-%032x-%016x-%02d" % (trace_id, span_id, 1 if priority > 0 else 0)
    assert info["trace_id"] == "%032x" % trace_id
    assert info["datadog"]["trace_id"] == str(trace_id & (2**64 - 1))
    assert info["datadog"]["parent_id"] == str(span_id)


def test_traceparent_with_tracestate(capsys: pytest.CaptureFixture) -> None:
    info = _json(capsys, TRACEPARENT, "--tracestate", "dd=s:2;o:rum;t.dm:-4,congo=t61rcWkgMzE")
    assert info["input"] == "tracecontext"
    _check_with_peers(info, TRACE_ID, SPAN_ID, 2)
    assert info["datadog"]["origin"] == "rum" and info["datadog"]["tid"] == "68a1b2c300000000"
    assert info["headers"]["x-datadog-tags"] == "_dd.p.tid=68a1b2c300000000,_dd.p.dm=-4"
    assert info["headers"]["tracestate"].endswith(",congo=t61rcWkgMzE")


def test_datadog_json_with_tags(capsys: pytest.CaptureFixture) -> None:
    headers = {"X-Datadog-Trace-Id": str(TRACE_ID & (2**64 - 1)), "x-datadog-parent-id": SPAN_ID,
               "x-datadog-sampling-priority": "-1", "x-datadog-tags": "_dd.p.tid=68a1b2c300000000,_dd.p.dm=-3"}
    info = _json(capsys, json.dumps(headers))
    assert info["input"] == "headers" and info["sampled"] is False
    _check_with_peers(info, TRACE_ID, SPAN_ID, -1)
    assert info["datadog"]["tags"]["_dd.p.dm"] == "-3"


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 2**128 - 1).filter(lambda t: t & (2**64 - 1)), st.integers(1, 2**64 - 1), st.sampled_from([-1, 0, 1, 2]))
def test_ddtrace_headers_in_every_format(trace_id: int, span_id: int, priority: int) -> None:
    from ddtrace.trace import Context as DDContext

    carrier: dict = {}
    saved = dd_config._propagation_style_inject
    dd_config._propagation_style_inject = ["datadog"]
    try:
        HTTPPropagator.inject(DDContext(trace_id=trace_id, span_id=span_id, sampling_priority=priority), carrier)
    finally:
        dd_config._propagation_style_inject = saved
    from otel_dd_lambda.commands import convert

    kind, span_context, links = convert.parse_input(json.dumps(carrier))
    info = convert.describe(span_context, kind, links)
    _check_with_peers(info, trace_id, span_id, priority)
    assert info["xray"]["root"] == "1-%08x-%024x" % (trace_id >> 96, trace_id & (2**96 - 1))


def test_xray_header_from_stdin_via_the_console_script() -> None:
    value = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a87bd80c:1"
    script = os.path.join(os.path.dirname(sys.executable), "otel-dd-lambda")
    proc = subprocess.run([script, "convert", "-", "--json"], input=value + "\n", capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["input"] == "xray"
    _check_with_peers(info, 0x5759E988BD862E3FE1BE46A994272793, 0x53995C3F42CD8AD8, 1)
    assert info["headers"]["X-Amzn-Trace-Id"].endswith(";Lineage=a87bd80c:1")
    # What datadog_lambda's X-Ray integration would call this trace: 63 bits of the root.
    assert info["datadog"]["xray_integration_trace_id"] == str(0xE1BE46A994272793 & 0x7FFF_FFFF_FFFF_FFFF)


def test_text_output_names_every_format(capsys: pytest.CaptureFixture) -> None:
    code, out, err = _convert(capsys, TRACEPARENT)
    assert code == 0 and err == ""
    for needle in ("traceparent: " + TRACEPARENT, "x-datadog-trace-id: %d" % (TRACE_ID & (2**64 - 1)),
                   "x-datadog-tags: _dd.p.tid=68a1b2c300000000", "X-Amzn-Trace-Id: Root=1-68a1b2c3-000000001d2b3c4d5e6f7081",
                   "68a1b2c3000000001d2b3c4d5e6f7081", str(SPAN_ID)):
        assert needle in out


def test_several_styles_in_json_follow_datadog_precedence(capsys: pytest.CaptureFixture) -> None:
    headers = {"x-datadog-trace-id": "5", "x-datadog-parent-id": "6", "traceparent": TRACEPARENT}
    info = _json(capsys, json.dumps(headers))
    assert info["trace_id"] == "%032x" % 5
    assert info["links"][0]["context_headers"] == "tracecontext"


@pytest.mark.parametrize(
    "value,message",
    [
        ("00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01", "32 lowercase hex"),
        ("00-00000000000000000000000000000000-b7ad6b7169203331-01", "all zeros"),
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b71692033-01", "parent id"),
        ('{"x-datadog-trace-id": "0", "x-datadog-parent-id": "1"}', "x-datadog-trace-id"),
        ('{"x-datadog-trace-id": "18446744073709551616", "x-datadog-parent-id": "1"}', "1 to 18446744073709551615"),
        ('{"x-datadog-trace-id": "1"}', "x-datadog-parent-id is missing"),
        ('{"x-datadog-trace-id": ["1"]}', "must be a string"),
        ("{not json", "invalid JSON"),
        ("[1, 2]", "unrecognised input"),
        ("Root=1-5759e988-bd862e3fe1be46a994272793", "no Parent"),
        ("Root=1-xyz;Parent=53995c3f42cd8ad8", "X-Ray Root"),
        ("hello", "unrecognised input"),
        ("", "empty input"),
    ],
)
def test_malformed_input_one_line_error_exit_2(capsys: pytest.CaptureFixture, value: str, message: str) -> None:
    code, out, err = _convert(capsys, value)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err, err
