"""Per-event cost of extract_context and inject, side by side with Datadog's reference in one run.

Targets (issue 3): extract_context on SQS (Datadog + W3C in _datadog), SNS Binary and API Gateway
events <= 0.33x datadog_lambda.tracing.extract_dd_trace_context on the same events; inject into
an SQS message <= 0.5x ddtrace HTTPPropagator.inject. Prints medians (us/call) and ratios.

The target events carry what real producers send, so that both sides do the real work: the SQS and
SNS `_datadog` attributes are what our `inject(..., "sqs"|"sns")` writes (Datadog + W3C; SNS Binary
arrives base64 in the Lambda event), and the API Gateway headers are what ddtrace's
`HTTPPropagator.inject` writes (Datadog + W3C, lowercase) among the sample's ordinary headers. The
stock samples carry Datadog headers only, on which the reference skips most of its W3C work: they
are timed too, for information. Each event's rounds alternate ours and the reference, so machine
noise hits both alike.

    .venv/bin/python benchmarks/bench_extract.py [--rounds 15] [--number 2000]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import sys
import timeit
from pathlib import Path
from typing import Any, Callable, Dict, Tuple

SAMPLES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "events"
TRACE_ID, SPAN_ID = 0x6548F5B2000000001234567890ABCDEF, 0x1122334455667788
TARGET_EXTRACT, TARGET_INJECT = 0.33, 0.5


def median_us(fn: Callable[[], object], number: int, repeat: int) -> float:
    fn()
    return statistics.median(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def side_by_side(ours: Callable[[], object], ref: Callable[[], object], number: int, rounds: int) -> Tuple[float, float]:
    """Median us/call of each, their rounds interleaved (ours, ref, ours, ...)."""
    ours(), ref()
    a, b = [], []
    for _ in range(rounds):
        a.append(timeit.timeit(ours, number=number))
        b.append(timeit.timeit(ref, number=number))
    return statistics.median(a) / number * 1e6, statistics.median(b) / number * 1e6


class LambdaContext:
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    client_context = None
    aws_request_id = "bench"


def _sample(name: str) -> Dict[str, Any]:
    return json.loads((SAMPLES / name).read_text())


def target_events() -> Dict[str, Dict[str, Any]]:
    """The issue's three events, carrying Datadog + W3C contexts as real producers write them."""
    from ddtrace.propagation.http import HTTPPropagator
    from ddtrace.trace import Context as DDContext
    from opentelemetry.trace import SpanContext, TraceFlags

    from otel_dd_lambda import inject

    sc = SpanContext(TRACE_ID, SPAN_ID, False, TraceFlags(1))
    message = {"QueueUrl": "q", "MessageBody": "hello"}
    assert inject(message, "sqs", sc)
    sqs = _sample("sqs-string-msg-attribute.json")
    sqs["Records"][0]["messageAttributes"]["_datadog"] = {
        "dataType": "String", "stringValue": message["MessageAttributes"]["_datadog"]["StringValue"]}

    publish = {"TopicArn": "arn:aws:sns:eu-west-1:601427279990:serverlessTracingTopicPy", "Message": "hello"}
    assert inject(publish, "sns", sc)
    binary = publish["MessageAttributes"]["_datadog"]["BinaryValue"]  # bytes to boto3, base64 to Lambda
    sns = _sample("sns-b64-msg-attribute.json")
    sns["Records"][0]["Sns"]["MessageAttributes"]["_datadog"] = {"Type": "Binary", "Value": base64.b64encode(binary).decode()}

    headers: Dict[str, str] = {}
    HTTPPropagator.inject(DDContext(trace_id=TRACE_ID, span_id=SPAN_ID, sampling_priority=1), headers)
    assert "traceparent" in headers and "x-datadog-trace-id" in headers, headers
    api = _sample("api-gateway.json")
    for key in [k for k in api["headers"] if k.lower().startswith("x-datadog-")]:
        del api["headers"][key]  # the sample's own Datadog-only context
    api["headers"].update(headers)
    return {"sqs (dd+w3c)": sqs, "sns binary": sns, "api gateway": api}


def stock_events() -> Dict[str, Dict[str, Any]]:
    """The samples as shipped: Datadog headers only (informational)."""
    return {"sns binary stock": _sample("sns-b64-msg-attribute.json"), "api gw stock": _sample("api-gateway.json")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--number", type=int, default=2000, help="calls per round")
    args = parser.parse_args(argv)
    os.environ.pop("_X_AMZN_TRACE_ID", None)
    from opentelemetry.trace import SpanContext, TraceFlags

    from otel_dd_lambda import extract_context, inject

    events = target_events()
    informational = stock_events()

    import logging

    # Both sides log at debug level only; disabling logging changes neither's cost measurably.
    logging.disable(logging.CRITICAL)
    from datadog_lambda.tracing import extract_dd_trace_context
    from ddtrace.propagation.http import HTTPPropagator
    from ddtrace.trace import Context as DDContext

    ctx = LambdaContext()
    failures = 0
    print("%-18s %10s %10s %7s" % ("extract", "ours us", "ref us", "ratio"))
    for name, event in {**events, **informational}.items():
        mine, (theirs, source, _) = extract_context(event, ctx), extract_dd_trace_context(event, ctx)
        # Both sides find the same context in the event itself (no short cut, no fallback).
        assert mine.parent is not None and source == "event", name
        assert mine.parent.trace_id & (2**64 - 1) == theirs.trace_id & (2**64 - 1), name
        ours, ref = side_by_side(lambda event=event: extract_context(event, ctx),
                                 lambda event=event: extract_dd_trace_context(event, ctx), args.number, args.rounds)
        ratio = ours / ref
        if name in events:
            failures += ratio > TARGET_EXTRACT
            verdict = "ok" if ratio <= TARGET_EXTRACT else "OVER %.2f" % TARGET_EXTRACT
        else:
            verdict = "(informational)"
        print("%-18s %10.2f %10.2f %7.2f %s" % (name, ours, ref, ratio, verdict))

    sc = SpanContext(TRACE_ID, SPAN_ID, False, TraceFlags(1))
    dd_context = DDContext(trace_id=TRACE_ID, span_id=SPAN_ID, sampling_priority=1)
    ref = median_us(lambda: HTTPPropagator.inject(dd_context, {}), args.number, args.rounds)
    # Same span for every message (a producer loop or a batch: headers built once per span) ...
    ours = median_us(lambda: inject({"QueueUrl": "q", "MessageBody": "hello"}, "sqs", sc), args.number, args.rounds)
    ratio = ours / ref
    failures += ratio > TARGET_INJECT
    verdict = "ok" if ratio <= TARGET_INJECT else "OVER %.2f" % TARGET_INJECT
    print("%-18s %10.2f %10.2f %7.2f %s" % ("inject sqs", ours, ref, ratio, verdict))
    # ... and a new span for every message (headers built every time), for the full picture.
    contexts = [SpanContext(sc.trace_id, sc.span_id + i, False, TraceFlags(1)) for i in range(64)]
    state = {"i": 0}

    def fresh() -> None:
        state["i"] = (state["i"] + 1) & 63
        inject({"QueueUrl": "q", "MessageBody": "hello"}, "sqs", contexts[state["i"]])

    ours = median_us(fresh, args.number, args.rounds)
    print("%-18s %10.2f %10.2f %7.2f (informational)" % ("inject new span", ours, ref, ours / ref))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
