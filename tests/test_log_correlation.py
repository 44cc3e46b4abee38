"""DD_LOGS_INJECTION: Datadog and OTel ids on every record, in Lambda's text and JSON formats."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest

from otel_dd_lambda.runtime import cold_start, log_correlation
from otel_dd_lambda.runtime.wrapper import instrument_handler
from tests.support.wrapper import FakeContext, pipeline

LAMBDA_FORMAT = "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n"


class LambdaLoggerHandler(logging.StreamHandler):
    """Stands for the runtime's handler of the same name (its class name is what is matched)."""


class RequestIdFilter(logging.Filter):
    def filter(self, record):
        record.aws_request_id = "req-0001"
        return True


class JsonFormatter(logging.Formatter):
    """Like the runtime's JSON format: standard keys plus the record's extra attributes."""

    _standard = set(vars(logging.makeLogRecord({})))

    def format(self, record):
        doc = {"level": record.levelname, "message": record.getMessage()}
        doc.update({k: v for k, v in vars(record).items() if k not in self._standard and k != "message"})
        return json.dumps(doc)


@pytest.fixture
def lambda_root(monkeypatch):
    monkeypatch.setenv("DD_COLD_START_TRACING", "false")
    cold_start._reset_for_tests()
    if "ddtrace" in sys.modules:
        # other tests import datadog_lambda, which turns on ddtrace's own log injection (it
        # rewrites dd.* from ddtrace's tracer in Logger.makeRecord): not what is tested here
        from ddtrace.contrib.internal.logging.patch import unpatch

        unpatch()
    root = logging.getLogger()
    stream = io.StringIO()
    handler = LambdaLoggerHandler(stream)
    handler.setFormatter(logging.Formatter(LAMBDA_FORMAT, "%Y-%m-%dT%H:%M:%S"))
    handler.addFilter(RequestIdFilter())
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    yield handler, stream
    root.removeHandler(handler)
    root.setLevel(old_level)
    log_correlation.uninstall()


def test_text_format_shows_datadog_ids(lambda_root):
    handler, stream = lambda_root
    assert log_correlation.install("svc", "prod", "1.0")
    # the Lambda text format now has the Datadog field (what a record carries is formatted in)
    record = logging.makeLogRecord({"msg": "m", "aws_request_id": "r", "dd.trace_id": "T", "dd.span_id": "S"})
    assert "[dd.trace_id=T dd.span_id=S]" in handler.formatter.format(record)
    provider, memory = pipeline()

    @instrument_handler(tracer_provider=provider)
    def fn(event, context):
        logging.getLogger("user").info("inside")

    fn({}, FakeContext())
    logging.getLogger("user").info("outside")
    (span,) = memory.get_finished_spans()
    inside, outside = [line for line in stream.getvalue().splitlines() if line][-2:]
    dd_trace = "%032x" % span.context.trace_id  # our ids are 128-bit: ddtrace logs them as 32 hex
    assert inside.endswith("\treq-0001\t[dd.trace_id=%s dd.span_id=%d]\tinside" % (dd_trace, span.context.span_id))
    assert "[dd.trace_id=0 dd.span_id=0]\toutside" in outside


def test_json_format_gets_keys(lambda_root):
    handler, stream = lambda_root
    handler.setFormatter(JsonFormatter())
    assert log_correlation.install()
    provider, memory = pipeline()

    @instrument_handler(tracer_provider=provider)
    def fn(event, context):
        logging.getLogger("user").warning("hello")

    fn({}, FakeContext())
    (span,) = memory.get_finished_spans()
    doc = json.loads([line for line in stream.getvalue().splitlines() if line][-1])
    assert doc["otelTraceID"] == "%032x" % span.context.trace_id
    assert doc["otelSpanID"] == "%016x" % span.context.span_id
    assert doc["dd.span_id"] == str(span.context.span_id)
    assert doc["otelTraceSampled"] is True


def test_id_formats_match_ddtrace():
    from ddtrace.internal.utils.formats import format_trace_id

    for trace_id in (1, 2**64 - 1, 2**64, (0x5E272390 << 96) | 12345):
        assert log_correlation.format_ids(trace_id, 7, True)[0] == format_trace_id(trace_id)


def test_install_is_idempotent_and_keeps_other_factories(lambda_root):
    seen = []
    previous = logging.getLogRecordFactory()

    def other(*args, **kwargs):
        record = previous(*args, **kwargs)
        seen.append(record)
        return record

    logging.setLogRecordFactory(other)
    try:
        log_correlation.install()
        factory = logging.getLogRecordFactory()
        log_correlation.install()
        assert logging.getLogRecordFactory() is factory
        logging.getLogger("user").info("x")
        assert seen and seen[-1].__dict__["dd.trace_id"] == "0"
    finally:
        log_correlation.uninstall()
        logging.setLogRecordFactory(previous)
