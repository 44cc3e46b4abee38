"""The wrapper's own CPU per invocation, without the network: trees side by side.

    python benchmarks/bench_wrapper_cpu.py before=/work/wt/before after=$PWD \
        "capture=$PWD:DD_CAPTURE_LAMBDA_PAYLOAD=true" [--rounds 14]

Each ``label=path[:VAR=value,...]`` is a copy of otel_dd_lambda (and extra environment). Every
round runs one fresh process per label (order alternating), which configures tracing with an
exporter that drops the spans (so neither the mapping nor a socket is measured: what remains is
extraction, the spans, the SDK and the Lambda processor), and reports the fastest of 40 batches of
200 calls in *process CPU time*: on a shared machine wall-clock figures swing by tens of percent,
CPU time by a few. Events: API Gateway, and SQS grown to 10 records (as bench_wrapper.py does).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

SAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "events")
EVENTS = ("api-gateway.json", "sqs-batch.json")

CHILD = r'''
import json, os, sys, time
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
import otel_dd_lambda

class Drop(SpanExporter):
    def export(self, spans):
        return SpanExportResult.SUCCESS

otel_dd_lambda.configure(exporter=Drop())

class Ctx:
    function_name = "bench"; aws_request_id = "r"; invoked_function_arn = "arn:aws:lambda:us-east-1:1:function:bench"
    memory_limit_in_mb = 128; client_context = None
    def get_remaining_time_in_millis(self): return 30000

ctx = Ctx()
call = otel_dd_lambda.instrument_handler(lambda e, c: {"statusCode": 200, "body": '{"ok": true}'})
out = {}
for name in sys.argv[1:]:
    event = json.load(open(os.path.join(os.environ["BENCH_SAMPLES"], name)))
    if "Records" in event:
        records = event["Records"]
        event["Records"] = [json.loads(json.dumps(records[i % len(records)])) for i in range(10)]
    now_ms = int(time.time() * 1000)  # fresh timestamps: inferred spans are made for recent events only
    for record in event.get("Records", ()):
        if "attributes" in record:
            record["attributes"]["SentTimestamp"] = str(now_ms)
    if "requestTimeEpoch" in event.get("requestContext", {}):
        event["requestContext"]["requestTimeEpoch"] = now_ms
    for _ in range(200):
        call(event, ctx)
    batches = []
    for _ in range(40):
        start = time.process_time()
        for _ in range(200):
            call(event, ctx)
        batches.append((time.process_time() - start) / 200 * 1e6)
    out[name] = min(batches)
print(json.dumps(out))
'''


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("trees", nargs="+", help="label=path[:VAR=value,...]")
    parser.add_argument("--rounds", type=int, default=14)
    args = parser.parse_args()
    trees = [tree.split("=", 1) for tree in args.trees]
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DD_", "OTEL_", "AWS_", "_X_AMZN"))}
    base.update({"AWS_LAMBDA_FUNCTION_NAME": "bench", "AWS_REGION": "us-east-1", "DD_COLD_START_TRACING": "false",
                 "DD_TRACE_MANAGED_SERVICES": "true", "DD_LOGS_INJECTION": "true", "BENCH_SAMPLES": SAMPLES})
    results: dict = {label: {event: [] for event in EVENTS} for label, _ in trees}
    cwd = tempfile.mkdtemp(prefix="bench-cpu-")  # not the repo: its otel_dd_lambda would shadow the trees'
    for round_ in range(args.rounds):
        for label, spec in trees if round_ % 2 == 0 else trees[::-1]:
            path, _, extra = spec.partition(":")
            env = dict(base, PYTHONPATH=path)
            env.update(kv.split("=", 1) for kv in extra.split(",") if kv)
            proc = subprocess.run([sys.executable, "-c", CHILD, *EVENTS], env=env, cwd=cwd, capture_output=True,
                                  text=True)
            if proc.returncode:
                sys.stderr.write(proc.stderr)
                raise SystemExit("%s failed" % label)
            for event, value in json.loads(proc.stdout.strip().splitlines()[-1]).items():
                results[label][event].append(value)
    print("== wrapper CPU per invocation (µs of process CPU time, median over %d processes of the fastest batch)"
          % args.rounds)
    first = trees[0][0]
    for label, _ in trees:
        cells = []
        for event in EVENTS:
            value = statistics.median(results[label][event])
            reference = statistics.median(results[first][event])
            cells.append("%s %7.1f µs (%+.1f%%)" % (event, value, (value / reference - 1) * 100))
        print("  %-12s %s" % (label, "   ".join(cells)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
