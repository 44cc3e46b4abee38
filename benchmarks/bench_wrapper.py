"""Handler instrumentation vs datadog_lambda's wrapper (with ddtrace), side by side.

1. per-invocation overhead (no-op handler; API Gateway event and a 10-record SQS event), each
   invocation exporting to the same loopback HTTP sink (ours: the synchronous flush; theirs:
   ddtrace's agent writer flushed after each call, as the Lambda extension's sync mode does);
2. cold import of the whole instrumented path (fresh interpreters, median);
3. RSS after that import.

    python benchmarks/bench_wrapper.py [--calls 300] [--runs 11]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_import import import_cost_ms  # noqa: E402

SAMPLES = os.environ.get("EVENT_SAMPLES") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "event_samples")

CHILD = r'''
import json, os, sys, time, statistics
sys.path.insert(0, os.environ["BENCH_APP_DIR"])
which, calls = sys.argv[1], int(sys.argv[2])
events = {name: json.load(open(os.path.join(os.environ["BENCH_SAMPLES"], name)))
          for name in ("api-gateway.json", "sqs-batch.json")}
records = events["sqs-batch.json"]["Records"]
events["sqs-batch.json"]["Records"] = [dict(records[i % len(records)]) for i in range(10)]
class Ctx:
    function_name = "bench"; aws_request_id = "r"; invoked_function_arn = "arn:aws:lambda:us-east-1:1:function:bench"
    memory_limit_in_mb = 128; client_context = None
    def get_remaining_time_in_millis(self): return 30000
def noop(event, context): return None
if which == "ours":
    import otel_dd_lambda
    from otel_dd_lambda.exporters.datadog import DatadogSpanExporter
    otel_dd_lambda.configure(exporter=DatadogSpanExporter(os.environ["SINK"], mode="agent"))
    wrapped = otel_dd_lambda.instrument_handler(noop)
    call = wrapped
else:
    from datadog_lambda.wrapper import datadog_lambda_wrapper
    from ddtrace.trace import tracer
    wrapped = datadog_lambda_wrapper(noop)
    def call(e, c):
        wrapped(e, c); tracer.flush()
out = {}
ctx = Ctx()
for name, event in events.items():
    for _ in range(20):
        call(event, ctx)
    bare, inst = [], []
    for _ in range(calls):
        t = time.perf_counter(); noop(event, ctx); bare.append(time.perf_counter() - t)
        t = time.perf_counter(); call(event, ctx); inst.append(time.perf_counter() - t)
    out[name] = (statistics.median(inst) - statistics.median(bare)) * 1e6
print(json.dumps(out))
'''


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    received = 0

    def log_message(self, *args):
        pass

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        Sink.received += 1
        body = b'{"rate_by_service":{}}'
        # one write for status, headers and body: split writes meet the client's delayed ACK
        # (~40 ms per request) and would measure the sink instead of the tracers
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                         % (len(body), body))
        self.wfile.flush()

    do_PUT = do_POST = _answer


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--runs", type=int, default=11)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sink = "http://127.0.0.1:%d" % server.server_address[1]
    app_dir = tempfile.mkdtemp(prefix="bench-app-")
    with open(os.path.join(app_dir, "bench_app.py"), "w") as handle:
        handle.write("def handler(event, context):\n    return None\n")

    base = {k: v for k, v in os.environ.items() if not k.startswith(("DD_", "OTEL_", "AWS_", "_X_AMZN"))}
    base.update({"BENCH_APP_DIR": app_dir, "BENCH_SAMPLES": SAMPLES, "SINK": sink, "DD_TRACE_AGENT_URL": sink,
                 "DD_TRACE_ENABLED": "true", "DD_ENHANCED_METRICS": "false", "DD_COLD_START_TRACING": "false",
                 "DD_TRACE_MANAGED_SERVICES": "true", "DD_LOGS_INJECTION": "true", "PYTHONPATH": app_dir})

    print("== per-invocation overhead (median µs over a bare call, %d calls, exporting every call)" % args.calls)
    results = {}
    for which in ("ours", "datadog_lambda"):
        proc = subprocess.run([sys.executable, "-c", CHILD, which, str(args.calls)], env=base,
                              capture_output=True, text=True, check=True)
        results[which] = json.loads(proc.stdout.strip().splitlines()[-1])
    for event in results["ours"]:
        ours, theirs = results["ours"][event], results["datadog_lambda"][event]
        print("  %-18s ours %8.1f µs   datadog_lambda %8.1f µs   ratio %.2fx" % (event, ours, theirs, ours / theirs))

    print("== cold import of the instrumented path (median ms over a bare interpreter, %d runs)" % args.runs)
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(base)
    os.environ.update({"AWS_LAMBDA_FUNCTION_NAME": "bench", "DD_LAMBDA_HANDLER": "bench_app.handler",
                       "OTEL_DD_LAMBDA_EXPORT_MODE": "agent"})
    try:
        statements = {
            "ours": "import otel_dd_lambda.handler",
            "datadog_lambda": "import datadog_lambda.wrapper",
            "dd_handler": "import datadog_lambda.handler",
        }
        os.environ["DD_LAMBDA_HANDLER"] = "bench_app.handler"
        costs = import_cost_ms(statements, runs=args.runs)
        rss = {}
        for label, statement in statements.items():
            code = statement + "\nimport resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
            rss[label] = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                            check=True).stdout.split()[-1]) / 1024
        bare = int(subprocess.run([sys.executable, "-c", "import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"],
                                  capture_output=True, text=True, check=True).stdout) / 1024
    finally:
        os.environ.clear()
        os.environ.update(saved)
    for label in statements:
        print("  %-16s %7.1f ms   ratio vs datadog_lambda.wrapper %.2fx" % (label, costs[label], costs[label] / costs["datadog_lambda"]))
    print("== max RSS after import (MB; bare interpreter %.1f MB)" % bare)
    for label in statements:
        print("  %-16s %7.1f MB   ratio %.2fx (over bare: %.2fx)" % (
            label, rss[label], rss[label] / rss["datadog_lambda"], (rss[label] - bare) / (rss["datadog_lambda"] - bare)))
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
