"""``otel-dd-lambda demo``: API Gateway -> Lambda -> SQS -> Lambda -> EventBridge -> Lambda, one trace.

Everything runs in this process on 127.0.0.1: moto (in server mode) stands in for SQS and
EventBridge, real boto3 clients talk to it, and three instrumented handlers get the events AWS
would build. Spans go through the Datadog exporter (to ``--agent-url``, else log mode) and are
drawn from the log-mode lines by ``otel-dd-lambda view``'s renderer: a waterfall with each
span's Datadog ids, X-Ray header and W3C traceparent.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from typing import Any, Dict, Optional

HELP = "run the end-to-end demo: three instrumented handlers, one trace"
REGION = "us-east-1"
# What the demo imports beyond the package's own dependencies: the `demo` extra in pyproject.toml
# (moto's server mode needs flask and flask-cors, which its `server` extra brings).
DEMO_MODULES = ("boto3", "moto", "moto.server", "flask", "flask_cors")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--agent-url",
                        help="send spans to this Datadog agent (default: log mode, shown with --show-payload)")
    parser.add_argument("--show-payload", action="store_true", help="print the exporter's log-mode JSON lines")
    parser.add_argument("--summary", action="store_true", help="end with one SUMMARY line of JSON (for scripts)")


def _aws_environment() -> None:
    # dummy credentials, in-process only: moto accepts anything, and nothing may reach real AWS
    os.environ["AWS_ACCESS_KEY_ID"] = "testing"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
    os.environ["AWS_SESSION_TOKEN"] = "testing"
    os.environ["AWS_DEFAULT_REGION"] = REGION
    os.environ["AWS_REGION"] = REGION
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_LAMBDA_FUNCTION_NAME", None)  # three functions here, named by their contexts
    os.environ.setdefault("DD_SERVICE", "otel-dd-lambda-demo")
    os.environ.setdefault("DD_ENV", "demo")
    os.environ["DD_COLD_START_TRACING"] = "false"


def _setup_aws(endpoint: str) -> Dict[str, Any]:
    import boto3

    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name=REGION)
    events = boto3.client("events", endpoint_url=endpoint, region_name=REGION)
    orders = sqs.create_queue(QueueName="demo-orders")["QueueUrl"]
    notices = sqs.create_queue(QueueName="demo-order-events")["QueueUrl"]
    arns = {}
    for name, url in (("orders", orders), ("notices", notices)):
        arns[name] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="demo-order-accepted", EventPattern=json.dumps({"source": ["demo.orders"]}))
    events.put_targets(Rule="demo-order-accepted", Targets=[{"Id": "notices", "Arn": arns["notices"]}])
    return {"sqs": sqs, "events": events, "orders_queue_url": orders, "notices_queue_url": notices,
            "orders_queue_arn": arns["orders"]}


def _receive(sqs: Any, url: str, wait_s: float = 2.0) -> list:
    deadline = time.monotonic() + wait_s
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"],
                                       MessageAttributeNames=["All"], WaitTimeSeconds=0).get("Messages", [])
        if messages or time.monotonic() > deadline:
            return messages
        time.sleep(0.05)


def missing_extra() -> Optional[str]:
    """The first module the demo needs that is not installed (the ``demo`` extra), else None."""
    import importlib.util

    for module in DEMO_MODULES:
        try:
            if importlib.util.find_spec(module) is None:
                return module
        except (ImportError, ValueError):  # a parent package missing, or a broken install
            return module
    return None


def run(args: argparse.Namespace) -> int:
    missing = missing_extra()
    if missing is not None:
        print("otel-dd-lambda demo: %s is not installed; install the demo's extra: "
              "pip install 'otel-dd-lambda[demo]'" % missing, file=sys.stderr)
        return 2
    _aws_environment()
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
    from moto.server import ThreadedMotoServer
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import otel_dd_lambda
    from otel_dd_lambda.exporters.datadog import DatadogSpanExporter

    payload = io.StringIO()
    exporter = DatadogSpanExporter(args.agent_url, mode="agent" if args.agent_url else "log", out=payload)
    memory = InMemorySpanExporter()  # a second exporter in the same provider, for the summary
    # The tree is drawn from log-mode lines, by `otel-dd-lambda view`'s renderer, whatever the mode.
    tree_lines = io.StringIO()
    tree_exporter = payload if not args.agent_url else tree_lines
    processors = [SimpleSpanProcessor(memory)]
    if args.agent_url:
        processors.append(SimpleSpanProcessor(DatadogSpanExporter(mode="log", out=tree_lines)))
    otel_dd_lambda.configure(exporter=exporter, span_processors=processors)

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        from otel_dd_lambda.demo import events, handlers

        handlers.clients.update(_setup_aws("http://%s:%d" % (host, port)))
        clients = handlers.clients

        print("1. API Gateway  POST /orders  -> demo-api (sends the order to SQS)")
        order = events.http_api_event({"id": "A-1001", "total": 42})
        response = handlers.api_handler(order, events.DemoContext("demo-api"))
        print("   response: %s" % response["statusCode"])

        messages = _receive(clients["sqs"], clients["orders_queue_url"])
        print("2. SQS demo-orders (%d message) -> demo-worker (puts an EventBridge event)" % len(messages))
        batch = events.sqs_event(messages, clients["orders_queue_arn"])
        handlers.worker_handler(batch, events.DemoContext("demo-worker"))

        routed = _receive(clients["sqs"], clients["notices_queue_url"])
        if routed:
            bridge_event = json.loads(routed[0]["Body"])
            how = "routed by the EventBridge rule"
        else:  # an emulator that cannot route: the event a rule would deliver for the entry
            bridge_event = events.eventbridge_event_from_entry(clients["last_entries"][0])
            how = "built from the PutEvents entry"
        print("3. EventBridge OrderAccepted (%s) -> demo-notifier" % how)
        handlers.notifier_handler(bridge_event, events.DemoContext("demo-notifier"))
    finally:
        server.stop()

    from otel_dd_lambda.commands import view
    from otel_dd_lambda.demo.tree import describe

    spans = memory.get_finished_spans()
    print()
    view.render_text(tree_exporter.getvalue(), sys.stdout)
    traces = {s.context.trace_id for s in spans}
    invocations = [s for s in spans if "faas.invocation_id" in (s.attributes or {})]
    print()
    if args.agent_url:
        print("Datadog exporter: %d spans sent to %s" % (exporter.sent_spans, args.agent_url))
    else:
        lines = [line for line in payload.getvalue().splitlines() if line]
        print("Datadog exporter (log mode, for the Forwarder): %d spans in %d JSON line(s)"
              % (sum(len(chunk) for line in lines for chunk in json.loads(line)["traces"]), len(lines)))
        if args.show_payload:
            for line in lines:
                print(line)
    verdict = "one trace" if len(traces) == 1 else "%d traces (expected one)" % len(traces)
    print("%d spans, %d invocations, %s" % (len(spans), len(invocations), verdict))
    if args.summary:
        print("SUMMARY " + json.dumps({"spans": describe(spans)}))
    return 0 if len(traces) == 1 and len(invocations) == 3 else 1
