"""Cold start of a function deployed with our Lambda layer, against a bare OTel SDK in the same shape.

Both functions run as Lambda runs them: a fresh interpreter with nothing installed, the layer's
``python/`` and a stand-in for ``/var/runtime`` (the runtime client only) on ``PYTHONPATH``, the real
``awslambdaric`` against the Runtime API emulator of ``tests/support``. Measured: from starting
the process to the first invocation's response reaching the emulator (init + first invocation),
an API Gateway event, spans written in log mode (stdout) on both sides:

- ours: our layer built by ``otel-dd-lambda layer``, the handler unchanged, traced through the
  layer's exec wrapper (``DD_FLUSH_TO_LOG=true``): the invocation span and the inferred API
  Gateway span;
- floor: ``opentelemetry-sdk`` alone installed the same way (``pip install --target``, byte-compiled
  the same way), a handler module that sets up a ``TracerProvider`` with a simple processor and a
  JSON-lines exporter at import, and makes two spans per invocation.

Needs pip and a package index (both layers are built here). Run by hand:
``.venv/bin/python benchmarks/bench_layer_cold_start.py [--runs 15]``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from tests.support.lambda_runtime import MANAGED_BOOTSTRAP, LambdaProcess, RuntimeAPI  # noqa: E402

RUNTIME_DISTRIBUTIONS = ("awslambdaric", "simplejson", "snapshot-restore-py")
EVENT = os.path.join(ROOT, "tests", "fixtures", "events", "api-gateway.json")

OURS_MODULE = '''
def fn(event, context):
    return {"statusCode": 200, "body": "ok"}
'''

FLOOR_MODULE = '''
import json
import sys

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult


class JsonLines(SpanExporter):
    def export(self, spans):
        sys.stdout.write(json.dumps([{"name": s.name, "trace_id": s.context.trace_id, "span_id": s.context.span_id,
                                      "start": s.start_time, "end": s.end_time, "attributes": dict(s.attributes)}
                                     for s in spans]) + "\\n")
        return SpanExportResult.SUCCESS


provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(JsonLines()))
tracer = provider.get_tracer("floor")


def fn(event, context):
    with tracer.start_as_current_span("aws.apigateway", kind=trace.SpanKind.SERVER,
                                      attributes={"http.method": event.get("httpMethod", "")}):
        with tracer.start_as_current_span("aws.lambda", attributes={"request_id": context.aws_request_id}):
            return {"statusCode": 200, "body": "ok"}
'''


def run(*command: str) -> None:
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, timeout=600)


def build_ours(work: str) -> str:
    out = os.path.join(work, "dist")
    printed = subprocess.run([sys.executable, "-m", "otel_dd_lambda.cli", "layer", "--out", out, "-c",
                              os.path.join(ROOT, "constraints.txt")], check=True, capture_output=True, text=True,
                             timeout=600, cwd=ROOT).stdout.strip()
    opt = os.path.join(work, "ours")
    with zipfile.ZipFile(printed) as archive:
        for info in archive.infolist():
            target = archive.extract(info, opt)
            os.chmod(target, (info.external_attr >> 16) & 0o777)
    return opt


def build_floor(work: str) -> str:
    opt = os.path.join(work, "floor")
    run(sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--target", os.path.join(opt, "python"),
        "-c", os.path.join(ROOT, "constraints.txt"), "opentelemetry-sdk")
    # as our layer ships them: compiled at build time, not checked against the sources at run time
    run(sys.executable, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", os.path.join(opt, "python"))
    return opt


def var_runtime(work: str) -> str:
    root = os.path.join(work, "runtime")
    os.makedirs(root)
    for name in RUNTIME_DISTRIBUTIONS:
        dist = importlib.metadata.distribution(name)
        for top in sorted({str(f).split("/")[0] for f in dist.files or ()}):
            source = os.path.join(str(dist.locate_file("")), top)
            if top not in ("..", "bin", "__pycache__") and not os.path.exists(os.path.join(root, top)):
                os.symlink(source, os.path.join(root, top))
    return root


def bare_python(work: str) -> str:
    venv = os.path.join(work, "venv")
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    return os.path.join(venv, "bin", "python")


def task_root(work: str, name: str, source: str) -> str:
    root = os.path.join(work, "task-" + name)
    os.makedirs(root)
    with open(os.path.join(root, "app.py"), "w") as handle:
        handle.write(textwrap.dedent(source).lstrip())
    return root


def cold_start_ms(opt: str, task: str, runtime: str, python: str, event: dict, wrapper: bool) -> float:
    env = {"PYTHONPATH": os.pathsep.join((task, os.path.join(opt, "python"), runtime)),
           "LAMBDA_RUNTIME_DIR": runtime, "DD_FLUSH_TO_LOG": "true"}
    command = [python, "-c", MANAGED_BOOTSTRAP]
    if wrapper:
        env["AWS_LAMBDA_EXEC_WRAPPER"] = os.path.join(opt, "otel-dd-lambda-wrapper")
        command = [env["AWS_LAMBDA_EXEC_WRAPPER"]] + command
    with RuntimeAPI() as api:
        invocation = api.invoke(event)
        start = time.time_ns()
        with LambdaProcess(api, task, "app.fn", env, command=command):
            result = api.result(invocation, 30)
    assert result.kind == "response", result.body
    return (result.received_ns - start) / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with open(EVENT) as handle:
        event = json.load(handle)
    with tempfile.TemporaryDirectory() as work:
        ours, floor = build_ours(work), build_floor(work)
        runtime, python = var_runtime(work), bare_python(work)
        tasks = {"ours": task_root(work, "ours", OURS_MODULE), "floor": task_root(work, "floor", FLOOR_MODULE)}
        samples = {"ours": [], "floor": []}
        for _ in range(args.runs):  # alternated, so both see the same machine
            samples["ours"].append(cold_start_ms(ours, tasks["ours"], runtime, python, event, True))
            samples["floor"].append(cold_start_ms(floor, tasks["floor"], runtime, python, event, False))
        sizes = {}
        for name, opt in (("ours", ours), ("floor", floor)):
            sizes[name] = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(opt) for f in files)
    print("cold start under awslambdaric (process start -> first response), API Gateway event, log mode, %d runs"
          % args.runs)
    for name in ("ours", "floor"):
        values = samples[name]
        print("  %-6s median %7.1f ms  min %7.1f  max %7.1f   layer %5.1f MB unzipped" % (
            name, statistics.median(values), min(values), max(values), sizes[name] / 1e6))
    print("  ours - floor: %+.1f ms (median)" % (statistics.median(samples["ours"]) - statistics.median(samples["floor"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
