"""Cold start as deployed: import + configure() + the first invocation, through the handler path.

    .venv/bin/python benchmarks/bench_cold_start.py [--runs 15] [--rebuild]

Each side runs in fresh processes of its own deployed-shape virtualenv (``bench_deployed.py``
builds them: only the run-time dependencies, installed by pip, bytecode compiled):

* ``ours``: ``import otel_dd_lambda.handler`` (configure() and the wrap of ``DD_LAMBDA_HANDLER``)
  then one call of ``otel_dd_lambda.handler.handler`` with an API Gateway event;
* ``datadog_lambda``: ``import datadog_lambda.handler`` then one call of its ``handler``;
* ``floor``: the bare OTel SDK (ours' venv) doing the same work by hand: a ``TracerProvider``,
  the two spans (inferred + invocation, 37 attributes) and one round trip of an empty payload;
* ``floor + wire``: the floor sending the two spans instead, in the least a Datadog exporter can
  write (``bench_wrapper.py``'s per-invocation "floor + Datadog wire"): ``msgpack``, the SDK's
  span-processor module (``opentelemetry.sdk.trace.export``, where every exporter's base classes
  live), ids, times, names and the attributes packed as they are;
* ``floor + wire + propagator``: the same, also installing a global propagator as any tracing
  set-up does (``opentelemetry.propagate``, imported with ``OTEL_PROPAGATORS=none`` as
  ``configure()`` does, so no entry point is scanned for it).

The last two are the cold-start cost of what no Datadog-exporting OTel wrapper can skip; what ours
adds above them is its own code: configuration, extraction, the inferred span, the mapping rules.

All three run with the Datadog extension reported present (agent mode; ``bench_wrapper``'s
``FAKE_EXTENSION``) and send to the same separate-process sink (``bench_wrapper.SINK``), so the
first invocation's round trip is in every figure. Each figure is the median over ``--runs``
processes of that process's cost over a bare interpreter of the same venv (interleaved, order
rotated), in wall time and in CPU time (user + system), which other load on the machine disturbs
less. The targets are judged on the cold start itself: from the process's start to the end of
its first invocation (the child reads the monotonic clock and its own CPU time there; the parent's
clock started before the spawn). The whole process is printed too; its extra part is the
interpreter's teardown, which a Lambda sandbox never runs (it is frozen, then killed).
RSS is ``VmRSS`` after the first invocation minus a bare interpreter's.

Targets (issue 13): cold start <= floor + 10 ms and <= 0.3x datadog_lambda; RSS added <= the
floor's + 1.5 MB. Building the venvs needs PyPI the first time: offline, this prints a line
saying so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Mapping, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_deployed import CACHE, bench_environ, ensure_ours, ensure_pip_venv  # noqa: E402
from bench_wrapper import FAKE_EXTENSION, SAMPLES, sink_running  # noqa: E402

# The event and context, as literals: no json import charged to anyone.
_EVENT_FILE = os.path.join(SAMPLES, "api-gateway.json")
_CONTEXT = (
    "class _Ctx:\n"
    "    function_name = 'bench'; aws_request_id = 'r'; memory_limit_in_mb = 128; client_context = None\n"
    "    invoked_function_arn = 'arn:aws:lambda:us-east-1:1:function:bench'\n"
    "    def get_remaining_time_in_millis(self): return 30000\n"
)
_FLOOR = (
    "import os\n"
    "import socket\n"
    "from urllib.parse import urlsplit\n"
    "from opentelemetry import context as otel_context, trace as otel_trace\n"
    "from opentelemetry.sdk.trace import TracerProvider\n"
    "tracer = TracerProvider().get_tracer('floor')\n"
    "agent = urlsplit(os.environ['DD_TRACE_AGENT_URL'])\n"
    "sock = socket.create_connection((agent.hostname, agent.port))\n"
    "inferred = tracer.start_span('inferred', attributes={'k%d' % i: 'v%d' % i for i in range(15)})\n"
    "span = tracer.start_span('aws.lambda', context=otel_trace.set_span_in_context(inferred),\n"
    "                         attributes={'k%d' % i: 'v%d' % i for i in range(22)})\n"
    "token = otel_context.attach(otel_trace.set_span_in_context(span))\n"
    "otel_context.detach(token)\n"
    "span.end()\n"
    "inferred.end()\n"
    "sock.sendall(b'PUT /v0.4/traces HTTP/1.1\\r\\nHost: x\\r\\nContent-Type: application/msgpack\\r\\n'\n"
    "             b'Content-Length: 1\\r\\n\\r\\n\\x90')\n"
    "sock.recv(65536)\n"
)
# The floor sending the two spans as bench_wrapper's "floor + Datadog wire" does.
_WIRE = (
    "import msgpack\n"
    "from opentelemetry.sdk.trace.export import SpanProcessor\n"
    "def _wire(spans):\n"
    "    chunk = []\n"
    "    for s in spans:\n"
    "        c, p = s.context, s.parent\n"
    "        chunk.append({'trace_id': c.trace_id & 0xFFFFFFFFFFFFFFFF, 'span_id': c.span_id,\n"
    "                      'parent_id': p.span_id if p else 0, 'start': s.start_time,\n"
    "                      'duration': s.end_time - s.start_time, 'error': 0, 'name': s.name, 'service': 'bench',\n"
    "                      'resource': s.name, 'type': 'serverless', 'meta': dict(s.attributes), 'metrics': {}})\n"
    "    body = msgpack.packb([chunk])\n"
    "    return (b'PUT /v0.4/traces HTTP/1.1\\r\\nHost: x\\r\\nContent-Type: application/msgpack\\r\\n'\n"
    "            b'X-Datadog-Trace-Count: 1\\r\\nContent-Length: %d\\r\\n\\r\\n' % len(body)) + body\n"
)
_PROPAGATOR = (
    "os.environ['OTEL_PROPAGATORS'] = 'none'\n"
    "from opentelemetry.propagate import set_global_textmap\n"
    "from opentelemetry.propagators.composite import CompositePropagator\n"
    "set_global_textmap(CompositePropagator([]))\n"
)
_FLOOR_SEND = _FLOOR[_FLOOR.index("sock.sendall("):_FLOOR.index("sock.recv(")]
_FLOOR_WIRE = _FLOOR.replace("tracer = ", _WIRE + "tracer = ").replace(_FLOOR_SEND, "sock.sendall(_wire((inferred, span)))\n")
_FLOOR_WIRE_PROPAGATOR = _FLOOR_WIRE.replace("tracer = ", _PROPAGATOR + "tracer = ")
# Appended to every side (and the bare interpreter): the end of the first invocation, as the
# monotonic clock (the parent's perf_counter clock) and this process's CPU time, then the RSS.
_MARK = ("\nimport time as _time\n_mark = (_time.perf_counter(), _time.process_time())\n"
         "print('MARK %r %r RSS' % _mark, open('/proc/self/status').read().split('VmRSS:')[1].split()[0])\n")


def statements(event: Mapping[str, object]) -> Dict[str, str]:
    call = _CONTEXT + "_event = %r\n_h.handler(_event, _Ctx())\n" % (dict(event),)
    return {
        "ours": FAKE_EXTENSION + "import otel_dd_lambda.handler as _h\n" + call,
        "datadog_lambda": FAKE_EXTENSION + "import datadog_lambda.handler as _h\n" + call,
        "floor": FAKE_EXTENSION + _FLOOR,
        "floor_wire": FAKE_EXTENSION + _FLOOR_WIRE,
        "floor_wire_propagator": FAKE_EXTENSION + _FLOOR_WIRE_PROPAGATOR,
    }


def setup() -> Tuple[Dict[str, str], Dict[str, str]]:
    """The statements of every side, and their environment: a recent API Gateway event (so an
    inferred span is made) and an app module whose handler does nothing."""
    with open(_EVENT_FILE) as handle:
        event = json.load(handle)
    event["requestContext"]["requestTimeEpoch"] = int(time.time() * 1000)
    app_dir = tempfile.mkdtemp(prefix="bench-app-")
    with open(os.path.join(app_dir, "bench_app.py"), "w") as handle:
        handle.write("def handler(event, context):\n    return None\n")
    return statements(event), bench_environ(app_dir)


class Sample:
    """One fresh process: to the end of its first invocation (wall and CPU s), the whole process
    (wall and CPU s), and its VmRSS (kB) after the first invocation."""

    __slots__ = ("wall", "cpu", "whole_wall", "whole_cpu", "rss")

    def __init__(self, wall: float, cpu: float, whole_wall: float, whole_cpu: float, rss: int) -> None:
        self.wall, self.cpu, self.whole_wall, self.whole_cpu, self.rss = wall, cpu, whole_wall, whole_cpu, rss


def _measure(python: str, code: str, env: Mapping[str, str]) -> Sample:
    """One fresh process. The whole process's CPU is the child's user + system time
    (RUSAGE_CHILDREN grows by exactly that child's usage once it is reaped, and only one child
    runs at a time here)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([python, "-c", code + _MARK], env=dict(env), capture_output=True)
    whole_wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        sys.stderr.write(proc.stderr.decode(errors="replace"))
        raise SystemExit("cold-start child failed")
    mark, cpu, _, rss = proc.stdout.split(b"MARK ")[-1].split()
    whole_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Sample(float(mark) - start, float(cpu), whole_wall, whole_cpu, int(rss))


FIGURES = ("wall", "cpu", "whole_wall", "whole_cpu", "rss")


def cold_start(pythons: Mapping[str, str], codes: Mapping[str, str], env: Mapping[str, str],
               runs: int) -> Dict[str, Dict[str, float]]:
    """Per side, each of ``FIGURES`` over a bare interpreter of the same venv, as medians: times
    in ms, RSS in MB."""
    labels = list(codes)
    samples: Dict[str, List[Sample]] = {label: [] for label in labels}
    bare: Dict[str, List[Sample]] = {label: [] for label in labels}
    for label in labels:  # bytecode of the app module, failures early
        _measure(pythons[label], codes[label], env)
    for i in range(runs):
        order = labels[i % len(labels):] + labels[:i % len(labels)]
        for label in order:
            bare[label].append(_measure(pythons[label], "pass", env))
            samples[label].append(_measure(pythons[label], codes[label], env))
    out = {}
    for label in labels:
        figures = {}
        for name in FIGURES:
            over = (statistics.median(getattr(v, name) for v in samples[label])
                    - statistics.median(getattr(v, name) for v in bare[label]))
            figures[name] = over / 1024 if name == "rss" else over * 1000
        out[label] = figures
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=25)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    os.makedirs(CACHE, exist_ok=True)
    try:
        ours = ensure_ours(args.rebuild)
        theirs = ensure_pip_venv("theirs", "datadog-lambda", args.rebuild)
    except subprocess.CalledProcessError as error:
        print("== cold start: SKIPPED, the deployed-shape venvs could not be built (no package index?): %s" % error)
        return 0
    codes, env = setup()
    with sink_running(env) as env:
        pythons = {"ours": ours, "datadog_lambda": theirs, "floor": ours, "floor_wire": ours,
                   "floor_wire_propagator": ours}
        result = cold_start(pythons, codes, env, args.runs)
    ours_r, floor_r, theirs_r = result["ours"], result["floor"], result["datadog_lambda"]
    wire_r, prop_r = result["floor_wire"], result["floor_wire_propagator"]
    print("== cold start as deployed: import + configure + first invocation (API Gateway, agent mode), "
          "median of %d fresh processes over a bare interpreter of the same venv" % args.runs)
    for unit, key in (("wall", "wall"), ("CPU", "cpu")):
        print("  %-4s ours %6.1f ms   floor (OTel SDK, 2 spans + round trip) %6.1f ms   datadog_lambda %6.1f ms"
              % (unit, ours_r[key], floor_r[key], theirs_r[key]))
        print("       floor + Datadog wire %6.1f ms (floor + %.1f ms)   + global propagator %6.1f ms (floor + %.1f ms)"
              % (wire_r[key], wire_r[key] - floor_r[key], prop_r[key], prop_r[key] - floor_r[key]))
        print("       target <= floor + 10 ms = %.1f ms: %s (floor %+.1f ms);   target <= 0.3x datadog_lambda = "
              "%.1f ms: %s (%.2fx)"
              % (floor_r[key] + 10, "met" if ours_r[key] <= floor_r[key] + 10 else "NOT met",
                 ours_r[key] - floor_r[key], 0.3 * theirs_r[key],
                 "met" if ours_r[key] <= 0.3 * theirs_r[key] else "NOT met", ours_r[key] / theirs_r[key]))
    print("  the whole process, with the interpreter's teardown (never run in a Lambda sandbox):")
    for unit, key in (("wall", "whole_wall"), ("CPU", "whole_cpu")):
        print("  %-4s ours %6.1f ms   floor %6.1f ms (ours: floor %+.1f ms)   + wire + propagator %6.1f ms   "
              "datadog_lambda %6.1f ms (%.2fx)"
              % (unit, ours_r[key], floor_r[key], ours_r[key] - floor_r[key], prop_r[key], theirs_r[key],
                 ours_r[key] / theirs_r[key]))
    print("  RSS  ours +%.1f MB   floor +%.1f MB   datadog_lambda +%.1f MB   target <= floor + 1.5 MB = %.1f MB: %s"
          % (ours_r["rss"], floor_r["rss"], theirs_r["rss"], floor_r["rss"] + 1.5,
             "met" if ours_r["rss"] <= floor_r["rss"] + 1.5 else "NOT met"))
    print("       floor + Datadog wire +%.2f MB   + global propagator +%.2f MB"
          % (wire_r["rss"], prop_r["rss"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
