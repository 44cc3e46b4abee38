"""Handler instrumentation vs datadog_lambda's wrapper (with ddtrace), side by side.

1. per-invocation overhead (no-op handler; API Gateway event and a 10-record SQS event), each
   invocation exporting to the same loopback sink: the median wall time of one call over a bare
   call, and the process's CPU time (user + system) per call over a loop of calls. CPU time leaves
   out the wait for the sink's answer, which every side pays alike, and keeps the cost of a larger
   working set (caches, branch prediction) that instruction counts (``bench_instructions.py``)
   leave out. Both swing between runs on a shared machine: only same-run ratios mean anything,
   and each target's verdict comes with a 90% bootstrap interval (``met``/``NOT met`` only when
   the whole interval is on one side of the target). Ours and the two floors run first *paired*:
   in one process, their calls interleaved, so that the machine's drift reaches them alike (a
   ratio per process, the verdict on their median); then each side in processes of its own,
   ``datadog_lambda`` included (ddtrace patches the process: it cannot share one);
2. cold import of the whole instrumented path (fresh interpreters, median);
3. RSS after that import.

    python benchmarks/bench_wrapper.py [--calls 300] [--runs 11]

Fairness (what both sides get, identically):

* The sink is a separate process (``SINK``): a single-threaded ``selectors`` loop that answers
  every request in one ``send`` on a keep-alive connection *before* it decodes the body, so its
  own CPU is neither in the measured process nor in the round trip. It decodes each body
  afterwards (v0.4 and v0.5 msgpack) and counts requests, traces, spans and connections, which
  the parent reads between runs: every row reports spans and requests per invocation, and the
  run fails if a side did not deliver each invocation's trace (or did not reuse its connection).
* Both sides run as in a Lambda sandbox with the Datadog extension: ``AWS_LAMBDA_FUNCTION_NAME``
  set, ``/opt/extensions/datadog-agent`` reported present (``os.path.exists`` answers True for
  that one path, patched before any import). That is what makes ddtrace pick its synchronous
  writer (``sync_mode``: the trace is sent on the caller's thread when it finishes, as in
  Lambda), datadog_lambda skip its own metric flushing, and ours pick agent mode; both read the
  sink's address from ``DD_TRACE_AGENT_URL``. Each side is set up the way a user would: ours with
  ``configure()`` and ``instrument_handler``, theirs with ``datadog_lambda_wrapper``; nobody calls
  an extra flush. Each side keeps its default wire format (ddtrace v0.5, ours v0.4).
* Same settings on both sides: ``DD_TRACE_MANAGED_SERVICES=true`` (inferred spans),
  ``DD_LOGS_INJECTION=true``, ``DD_COLD_START_TRACING=false``, ``DD_ENHANCED_METRICS=false``;
  no ``DD_LOG_LEVEL``/``DD_TRACE_DEBUG`` (no debug logging on either side).
* Each (side, event) runs in its own fresh process, so counts are per row.

Floors, printed beside each target: per invocation, a child that does only what any OTel-SDK
wrapper waiting for the agent's answer must do (two spans with 37 attributes, for SQS one link
per record carrying the record's message id and the sender's tracestate, as ours do; context
attach; one round trip of an empty payload to the same sink); for import and RSS, ``import
opentelemetry.trace`` (the OTel API alone) and ``import opentelemetry.sdk.trace``. A target
below its floor cannot be met by this package while it is built on the OTel SDK.
A second per-invocation floor, "floor + Datadog wire", also sends the two spans: ids, times, names
and the attributes (the links' too) as they are, packed by msgpack, with no Datadog rule and no
limit applied. It is the least a wrapper exporting to the Datadog agent can do; what ours costs
above it is extraction, the inferred span's tags and the mapping rules.

RSS is read from ``/proc/self/status`` (``VmRSS``, the resident set after the import, and
``VmHWM``, its peak). ``ru_maxrss`` is not usable here: Linux carries it over ``fork``+``exec``
from the parent, so every child reported at least this benchmark's own RSS (a "bare
interpreter" of 21.6 MB instead of ~11 MB). The ratio reported as the target is over the bare
interpreter (what each library adds to the process): the interpreter's own ~11 MB is the same on
both sides and would otherwise dominate a library that adds little. Totals are printed too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
from typing import Callable, Dict, Iterator, List, Mapping, Sequence, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_import import _env as import_env  # noqa: E402
from bench_import import import_cost_ms  # noqa: E402

SAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "events")
# "sqs-batch.json" grows the sample's batch to 10 records that share one ``_datadog`` (one
# SendMessageBatch: what the sample holds); the ":distinct" variant gives each record its own
# parent id (ten separate senders), so each carrier is parsed; ":single" keeps one record (with
# the 10-record rows it separates what a batch costs per record from what every invocation costs).
EVENTS = ("api-gateway.json", "sqs-batch.json", "sqs-batch.json:distinct")
# issue 13: per invocation, ours over the OTel SDK floor of the same run
FLOOR_TARGETS = {"api-gateway.json": 1.5, "sqs-batch.json": 1.8, "sqs-batch.json:distinct": 1.8}

# Pretend the Datadog Lambda extension is installed (both sides check this one path).
FAKE_EXTENSION = (
    "import os.path as _p\n"
    "_exists = _p.exists\n"
    "_p.exists = lambda path, _e=_exists: path == '/opt/extensions/datadog-agent' or _e(path)\n"
)

SINK = r'''
import json, selectors, socket, sys
import msgpack

stats = {"requests": 0, "traces": 0, "spans": 0, "connections": 0, "bytes": 0, "undecodable": 0}
RESPONSE_BODY = b'{"rate_by_service":{}}'
OK = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
      % len(RESPONSE_BODY)) + RESPONSE_BODY

def count(path, body):
    try:
        data = msgpack.unpackb(body, raw=False, strict_map_key=False)
        traces = data[1] if path.startswith(b"/v0.5") else data
        stats["traces"] += len(traces)
        stats["spans"] += sum(len(t) for t in traces)
    except Exception:
        stats["undecodable"] += 1

class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

def handle(conn):
    """Answer every complete request in the buffer; False when the peer closed."""
    data = conn.sock.recv(1 << 20)
    if not data:
        return False
    conn.buf += data
    while True:
        end = conn.buf.find(b"\r\n\r\n")
        if end < 0:
            return True
        head = conn.buf[:end].split(b"\r\n")
        method, path = head[0].split(b" ")[:2]
        headers = {}
        for line in head[1:]:
            k, _, v = line.partition(b":")
            headers[k.strip().lower()] = v.strip()
        rest = conn.buf[end + 4:]
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            body, pos = b"", 0
            while True:
                eol = rest.find(b"\r\n", pos)
                if eol < 0:
                    return True
                size = int(rest[pos:eol].split(b";")[0], 16)
                if len(rest) < eol + 2 + size + 2:
                    return True
                body += rest[eol + 2:eol + 2 + size]
                pos = eol + 2 + size + 2
                if size == 0:
                    break
            conn.buf = rest[pos:]
        else:
            length = int(headers.get(b"content-length", b"0"))
            if len(rest) < length:
                if headers.get(b"expect", b"").lower() == b"100-continue" and not rest:
                    conn.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                return True
            body, conn.buf = rest[:length], rest[length:]
        if path == b"/stats":
            out = json.dumps(stats).encode()
            conn.sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                              % (len(out), out))
            return False
        conn.sock.sendall(OK)  # one write, answered before any bookkeeping
        stats["requests"] += 1
        stats["bytes"] += len(body)
        if method in (b"PUT", b"POST") and b"traces" in path:
            count(path, body)

listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", 0))
listener.listen(64)
listener.setblocking(False)
print(listener.getsockname()[1], flush=True)
sel = selectors.DefaultSelector()
sel.register(listener, selectors.EVENT_READ, None)
while True:
    for key, _ in sel.select():
        if key.data is None:
            sock, _ = listener.accept()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Conn(sock)
            sel.register(sock, selectors.EVENT_READ, conn)
            stats["connections"] += 1
        else:
            conn = key.data
            try:
                alive = handle(conn)
            except OSError:
                alive = False
            if not alive:
                sel.unregister(conn.sock)
                conn.sock.close()
'''

CHILD = FAKE_EXTENSION + r'''
import json, os, sys, time, statistics
sys.path.insert(0, os.environ["BENCH_APP_DIR"])
which, event_name, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
event_name, _, variant = event_name.partition(":")
event = json.load(open(os.path.join(os.environ["BENCH_SAMPLES"], event_name)))
if "Records" in event:
    records = event["Records"]
    size = 1 if variant == "single" else 10
    event["Records"] = [json.loads(json.dumps(records[i % len(records)])) for i in range(size)]
    if variant == "distinct":
        for i, record in enumerate(event["Records"]):
            attribute = record["messageAttributes"]["_datadog"]
            carrier = json.loads(attribute["stringValue"])
            carrier["x-datadog-parent-id"] = str(1000 + i)
            attribute["stringValue"] = json.dumps(carrier)
# fresh timestamps: an event older than a few days gets no inferred span from us (datadog_lambda
# makes one anyway), and both sides must do the same work
now_ms = int(time.time() * 1000)
for record in event.get("Records", ()):
    if "attributes" in record:
        record["attributes"]["SentTimestamp"] = str(now_ms)
if "requestTimeEpoch" in event.get("requestContext", {}):
    event["requestContext"]["requestTimeEpoch"] = now_ms
class Ctx:
    function_name = "bench"; aws_request_id = "r"; invoked_function_arn = "arn:aws:lambda:us-east-1:1:function:bench"
    memory_limit_in_mb = 128; client_context = None
    def get_remaining_time_in_millis(self): return 30000
def noop(event, context): return None
if which == "ours":
    import otel_dd_lambda
    otel_dd_lambda.configure()  # DD_TRACE_AGENT_URL, extension present: agent mode
    call = otel_dd_lambda.instrument_handler(noop)
else:
    from datadog_lambda.wrapper import datadog_lambda_wrapper
    call = datadog_lambda_wrapper(noop)  # ddtrace's sync writer sends each finished trace
ctx = Ctx()
if which in ("floor", "floor_wire"):
    # What any wrapper built on the OTel SDK that waits for the agent's answer pays at least:
    # two spans (inferred + invocation) carrying 37 attributes between them (what ours sets for
    # an API Gateway invocation), the context attach/detach, and one round trip of the smallest
    # valid payload (an empty v0.4 array) to the same sink. No mapping, encoding or extraction.
    # "floor_wire" sends the two spans instead, in the least a Datadog exporter can write: ids,
    # times, names and the attributes as they are (no Datadog rule, no limit), packed by msgpack.
    import socket
    import msgpack
    from urllib.parse import urlsplit
    from opentelemetry import context as otel_context, trace as otel_trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanProcessor
    tracer = TracerProvider()
    tracer.add_span_processor(SpanProcessor())  # the base class: no-op hooks
    tracer = tracer.get_tracer("floor")
    inferred_attrs = {"k%d" % i: "v%d" % i for i in range(15)}
    invocation_attrs = {"k%d" % i: "v%d" % i for i in range(22)}
    agent = urlsplit(os.environ["DD_TRACE_AGENT_URL"])
    sock = socket.create_connection((agent.hostname, agent.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    request = b"PUT /v0.4/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/msgpack\r\nContent-Length: 1\r\n\r\n\x90"
    from opentelemetry.trace import Link, SpanContext, TraceFlags, TraceState
    # an SQS batch: one link per record, built per invocation as any wrapper reading the event
    # must, carrying what ours carry: the record's message id (which message the link stands for;
    # the SDK checks a link's attributes as it does a span's) and the sender's tracestate
    link_ids = [(0x1000 + i, 0x2000 + i, str(record.get("messageId")))
                for i, record in enumerate(event.get("Records", ()))]
    sender_state = TraceState([("dd", "s:1;t.dm:-0")])
    def call(event, ctx):
        links = [Link(SpanContext(t, s, True, TraceFlags(1), sender_state), {"messaging.message.id": m})
                 for t, s, m in link_ids]
        inferred = tracer.start_span("inferred", attributes=inferred_attrs)
        span = tracer.start_span("aws.lambda", context=otel_trace.set_span_in_context(inferred), attributes=invocation_attrs,
                                 links=links)
        token = otel_context.attach(otel_trace.set_span_in_context(span))
        try:
            return noop(event, ctx)
        finally:
            otel_context.detach(token)
            span.end()
            inferred.end()
            sock.sendall(wire_request((inferred, span)) if which == "floor_wire" else request)
            sock.recv(65536)  # the sink answers in one send
    def wire_request(spans):
        chunk = []
        for s in spans:
            c, p = s.context, s.parent
            d = {"trace_id": c.trace_id & 0xFFFFFFFFFFFFFFFF, "span_id": c.span_id, "parent_id": p.span_id if p else 0,
                 "start": s.start_time, "duration": s.end_time - s.start_time, "error": 0, "name": s.name,
                 "service": "bench", "resource": s.name, "type": "serverless", "meta": dict(s.attributes),
                 "metrics": {}}
            if s.links:
                d["span_links"] = [{"trace_id": l.context.trace_id, "span_id": l.context.span_id,
                                    "attributes": dict(l.attributes)} for l in s.links]
            chunk.append(d)
        body = msgpack.packb([chunk])
        return (b"PUT /v0.4/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/msgpack\r\n"
                b"X-Datadog-Trace-Count: 1\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
for _ in range(20):
    call(event, ctx)
bare, inst = [], []
perf = time.perf_counter
for _ in range(calls):
    t = perf(); noop(event, ctx); bare.append(perf() - t)
    t = perf(); call(event, ctx); inst.append(perf() - t)
# CPU time (user + system) of the same calls, in whole loops: the process's own work, without the
# wait for the sink's answer (one clock read per loop: the CPU clock is a system call)
cpu = time.process_time
t = cpu()
for _ in range(calls):
    noop(event, ctx)
bare_cpu = cpu() - t
t = cpu()
for _ in range(calls):
    call(event, ctx)
inst_cpu = cpu() - t
print(json.dumps({"overhead_us": (statistics.median(inst) - statistics.median(bare)) * 1e6,
                  "cpu_us": (inst_cpu - bare_cpu) / calls * 1e6, "invocations": 20 + 2 * calls}))
'''


# The sides measured in one process, call by call (``PAIRED_CHILD``): all three are built on the
# OTel SDK and none patches anything the others use (datadog_lambda/ddtrace would: it runs alone).
PAIRED_SIDES = ("ours", "floor", "floor_wire")
# CHILD's set-up (the event, the context, ``call``) for one side, run once per side below
_SIDE_SETUP = CHILD[len(FAKE_EXTENSION):].split("for _ in range(20):")[0]
PAIRED_CHILD = FAKE_EXTENSION + "SIDE_SETUP = %r\nSIDES = %r\n" % (_SIDE_SETUP, PAIRED_SIDES) + r'''
import json, statistics, sys, time
event_name, calls = sys.argv[1], int(sys.argv[2])
sides = {}
for which in SIDES:
    sys.argv = [sys.argv[0], which, event_name, str(calls)]
    scope = {"__name__": "side_" + which}
    exec(SIDE_SETUP, scope)
    sides[which] = (scope["call"], scope["event"], scope["ctx"])
noop, rotation = scope["noop"], list(SIDES)
def rounds(count, run):
    # each round runs every side once, the first side rotating: no side always follows the same one
    for index in range(count):
        shift = index % len(rotation)
        for which in rotation[shift:] + rotation[:shift]:
            run(which)
invocations = dict.fromkeys(SIDES, 0)
def warm(which):
    call, event, ctx = sides[which]
    call(event, ctx)
    invocations[which] += 1
rounds(20, warm)
perf = time.perf_counter
wall = {which: [] for which in SIDES}
bare = []
def timed(which):
    call, event, ctx = sides[which]
    t = perf(); noop(event, ctx); bare.append(perf() - t)
    t = perf(); call(event, ctx); wall[which].append(perf() - t)
    invocations[which] += 1
rounds(calls, timed)
# CPU time in blocks of calls (one clock read per block: the CPU clock is a system call)
block = 25
cpu = dict.fromkeys(SIDES, 0.0)
def cpu_block(which):
    call, event, ctx = sides[which]
    t = time.process_time()
    for _ in range(block):
        call(event, ctx)
    cpu[which] += time.process_time() - t
    invocations[which] += block
cpu_rounds = max(1, calls // block)
rounds(cpu_rounds, cpu_block)
event, ctx = sides[SIDES[0]][1:]
t = time.process_time()
for _ in range(block * cpu_rounds):
    noop(event, ctx)
bare_cpu = (time.process_time() - t) / (block * cpu_rounds)
base = statistics.median(bare)
print(json.dumps({"overhead_us": {w: (statistics.median(v) - base) * 1e6 for w, v in wall.items()},
                  "cpu_us": {w: (c / (block * cpu_rounds) - bare_cpu) * 1e6 for w, c in cpu.items()},
                  "invocations": invocations}))
'''


def child_env(environ: Mapping[str, str], app_dir: str) -> Dict[str, str]:
    """A child's environment (this benchmark's and those reusing its child): ``environ`` without
    any tracing or Lambda variable, then the sandbox and the settings every side gets alike."""
    env = {k: v for k, v in environ.items() if not k.startswith(("DD_", "OTEL_", "AWS_", "_X_AMZN"))}
    env.update({"BENCH_APP_DIR": app_dir, "BENCH_SAMPLES": SAMPLES, "AWS_LAMBDA_FUNCTION_NAME": "bench",
                "AWS_REGION": "us-east-1", "DD_TRACE_ENABLED": "true", "DD_ENHANCED_METRICS": "false",
                "DD_COLD_START_TRACING": "false", "DD_TRACE_MANAGED_SERVICES": "true",
                "DD_LOGS_INJECTION": "true"})
    return env


def counted_child_env(app_dir: str) -> Dict[str, str]:
    """``child_env`` for the counting benchmarks (instructions, footprint): string hashing fixed
    (``PYTHONHASHSEED=0``: the same counts on every run), ``BENCH_OURS_PATH`` honoured."""
    env = child_env(os.environ, app_dir)
    env["PYTHONHASHSEED"] = "0"
    if os.environ.get("BENCH_OURS_PATH"):
        env["PYTHONPATH"] = os.environ["BENCH_OURS_PATH"]
    return env


@contextlib.contextmanager
def sink_running(env: Dict[str, str]) -> Iterator[Dict[str, str]]:
    """``SINK`` in its own process while the block runs; yields ``env`` pointing at it."""
    sink = subprocess.Popen([sys.executable, "-c", SINK], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert sink.stdout is not None
        yield dict(env, DD_TRACE_AGENT_URL="http://127.0.0.1:%d" % int(sink.stdout.readline()))
    finally:
        sink.kill()
        sink.wait()


def _interval(statistic: Callable[[Callable[..., List[float]]], float], rounds: int = 2000) -> Tuple[float, float]:
    """The 90% bootstrap interval of ``statistic(pick)``, ``pick`` drawing values with replacement
    (seeded: the same values give the same interval)."""
    pick = random.Random(0).choices
    values = sorted(statistic(pick) for _ in range(rounds))
    return values[int(0.05 * rounds)], values[int(0.95 * rounds) - 1]


def ratio_interval(ours: Sequence[float], floor: Sequence[float]) -> Tuple[float, float]:
    """The interval of ``median(ours) / median(floor)``, both sides' per-process values resampled.
    On a shared machine one process of a side can run 2x slower than the next, so a median of a
    few processes moves by tens of percent between runs; the interval says how far."""
    return _interval(lambda pick: statistics.median(pick(ours, k=len(ours)))
                     / statistics.median(pick(floor, k=len(floor))))


def median_interval(values: Sequence[float]) -> Tuple[float, float]:
    """The interval of ``median(values)`` (paired ratios, one per process)."""
    return _interval(lambda pick: statistics.median(pick(values, k=len(values))))


def verdict(low: float, high: float, target: float) -> str:
    """``met`` or ``NOT met`` when the ratio's interval (``low``-``high``) is on one side of
    ``target``; otherwise the run cannot tell."""
    if high <= target:
        answer = "met"
    elif low > target:
        answer = "NOT met"
    else:
        answer = "undecided at this run's noise"
    return "%s; interval %.2f-%.2fx" % (answer, low, high)


def sink_stats(port: int) -> dict:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /stats HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        data = b""
        while True:
            part = sock.recv(65536)
            if not part:
                break
            data += part
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


def paired(env: Dict[str, str], port: int, app_dir: str, calls: int, processes: int) -> None:
    """Per invocation, ours and the floors in one process, call by call (``PAIRED_CHILD``): what
    drifts on a shared machine (another tenant, the clock, the core the scheduler picks) drifts
    for every side alike within a process, so each process gives a ratio that moves by a few
    percent where separate processes' medians move by tens. What is left differs between processes
    (memory layout, caches), so the verdict takes the median of the processes' ratios and its
    interval."""
    print("== per-invocation overhead, paired: ours and the floors in one process, calls interleaved "
          "(median µs over a bare call, %d calls per side; %d processes)" % (calls, processes))
    for event in EVENTS:
        rows = []
        for _ in range(processes):
            before = sink_stats(port)
            proc = subprocess.run([sys.executable, "-c", PAIRED_CHILD, event, str(calls)], env=env,
                                  capture_output=True, text=True, cwd=app_dir)
            if proc.returncode:
                sys.stderr.write(proc.stderr)
                raise SystemExit("the paired child failed on %s" % event)
            out = json.loads(proc.stdout.strip().splitlines()[-1])
            delta = {k: v - before[k] for k, v in sink_stats(port).items()}
            sent = out["invocations"]
            if delta["requests"] < sum(sent.values()) or delta["undecodable"] \
                    or delta["spans"] < 2 * (sent["ours"] + sent["floor_wire"]):
                raise SystemExit("a paired side did not deliver every invocation's spans on %s" % event)
            rows.append(out)
        target = FLOOR_TARGETS[event]
        for measure, label in (("overhead_us", "wall"), ("cpu_us", "CPU")):
            ratios = {w: sorted(r[measure][w] / r[measure]["floor"] for r in rows) for w in ("ours", "floor_wire")}
            ours = ratios["ours"]
            print("  %-23s %-4s ours %7.1f µs, floor %7.1f µs, floor + wire %7.1f µs; ours / floor %.2fx "
                  "(target <= %.1fx: %s); floor + wire / floor %.2fx" % (
                      event, label, statistics.median(r[measure]["ours"] for r in rows),
                      statistics.median(r[measure]["floor"] for r in rows),
                      statistics.median(r[measure]["floor_wire"] for r in rows), statistics.median(ours), target,
                      verdict(*median_interval(ours), target), statistics.median(ratios["floor_wire"])))
        print("      ours / floor per process, wall: %s" % " ".join(
            "%.2f" % (r["overhead_us"]["ours"] / r["overhead_us"]["floor"]) for r in rows))
        print("      ours / floor per process, CPU:  %s" % " ".join(
            "%.2f" % (r["cpu_us"]["ours"] / r["cpu_us"]["floor"]) for r in rows))


def proc_rss_kb(statement: str, env: dict) -> tuple:
    code = FAKE_EXTENSION + statement + (
        "\nimport re\ns = open('/proc/self/status').read()\n"
        "print(re.search(r'VmRSS:\\s+(\\d+)', s).group(1), re.search(r'VmHWM:\\s+(\\d+)', s).group(1))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    rss, hwm = out.stdout.split()[-2:]
    return int(rss), int(hwm)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--processes", type=int, default=5, help="child processes per side and event (median of them)")
    parser.add_argument("--paired-processes", type=int, default=15,
                        help="processes per event for the paired rows (each runs ours and both floors)")
    parser.add_argument("--skip-import", action="store_true")
    parser.add_argument("--skip-invocation", action="store_true")
    args = parser.parse_args()
    app_dir = tempfile.mkdtemp(prefix="bench-app-")
    with open(os.path.join(app_dir, "bench_app.py"), "w") as handle:
        handle.write("def handler(event, context):\n    return None\n")

    base = child_env(import_env(), app_dir)
    base["PYTHONPATH"] = app_dir
    if os.environ.get("BENCH_OURS_PATH"):  # another copy of otel_dd_lambda (before/after comparisons)
        base["PYTHONPATH"] = os.environ["BENCH_OURS_PATH"] + os.pathsep + app_dir

    if not args.skip_invocation:
        with sink_running(base) as env:
            port = int(env["DD_TRACE_AGENT_URL"].rsplit(":", 1)[1])
            paired(env, port, app_dir, args.calls, args.paired_processes)
            print("== per-invocation overhead (median µs over a bare call, %d calls per process, median of %d "
                  "processes per side, each exporting to a separate-process keep-alive sink)" % (args.calls, args.processes))
            sides = ("ours", "datadog_lambda", "floor", "floor_wire")
            for event in EVENTS:
                samples: dict = {which: [] for which in sides}
                cpu_samples: dict = {which: [] for which in sides}
                totals: dict = {which: {} for which in sides}
                for round_ in range(args.processes):
                    # Each child is one process, placed by the scheduler relative to the sink (same
                    # core or not: a bimodal round trip); several per side, in rotating order.
                    order = sides[round_ % len(sides):] + sides[:round_ % len(sides)]
                    for which in order:
                        before = sink_stats(port)
                        # cwd: not the repo, whose otel_dd_lambda would shadow BENCH_OURS_PATH's
                        # (``python -c`` puts the working directory first on sys.path)
                        proc = subprocess.run([sys.executable, "-c", CHILD, which, event, str(args.calls)], env=env,
                                              capture_output=True, text=True, cwd=app_dir)
                        if proc.returncode:
                            sys.stderr.write(proc.stderr)
                            raise SystemExit("%s failed on %s" % (which, event))
                        out = json.loads(proc.stdout.strip().splitlines()[-1])
                        after = sink_stats(port)
                        delta = {k: after[k] - before[k] for k in after}
                        delta["connections"] -= 1  # our own /stats request
                        delta["invocations"] = out["invocations"]
                        samples[which].append(out["overhead_us"])
                        cpu_samples[which].append(out["cpu_us"])
                        for key, value in delta.items():
                            totals[which][key] = totals[which].get(key, 0) + value
                        if which != "floor" and (delta["requests"] < out["invocations"]
                                                 or delta["spans"] < out["invocations"] or delta["undecodable"]):
                            raise SystemExit("%s did not deliver every invocation's spans" % which)
                median = {which: statistics.median(samples[which]) for which in sides}
                ours, theirs, floor = median["ours"], median["datadog_lambda"], median["floor"]
                print("  %-23s ours %8.1f µs   datadog_lambda %8.1f µs   ratio %.2fx   (target 0.30x = %.1f µs)" % (
                    event, ours, theirs, ours / theirs, 0.3 * theirs))
                target = FLOOR_TARGETS[event]
                print("      floor: OTel SDK, 2 spans / 37 attributes%s + one sink round trip %8.1f µs = %.2fx datadog_lambda"
                      % (" / 10 links" if event.startswith("sqs") else "", floor, floor / theirs))
                print("      ours / floor %.2fx   (target <= %.1fx = %.1f µs: %s)" % (
                    ours / floor, target, target * floor, verdict(*ratio_interval(samples["ours"], samples["floor"]), target)))
                wire = median["floor_wire"]
                print("      floor + Datadog wire (the 2 spans' attributes packed as they are, no mapping rule) %8.1f µs"
                      " = %.2fx floor; ours / it %.2fx" % (wire, wire / floor, ours / wire))
                cpu = {which: statistics.median(cpu_samples[which]) for which in sides}
                print("      CPU time (user + system, no wait for the sink): ours %.1f µs, floor %.1f µs, "
                      "floor + wire %.1f µs, datadog_lambda %.1f µs; ours / floor %.2fx (target <= %.1fx: %s)" % (
                          cpu["ours"], cpu["floor"], cpu["floor_wire"], cpu["datadog_lambda"], cpu["ours"] / cpu["floor"],
                          target, verdict(*ratio_interval(cpu_samples["ours"], cpu_samples["floor"]), target)))
                for which in sides:
                    print("      %-15s per process: %s   (CPU %s)" % (
                        which, " ".join("%.0f" % x for x in samples[which]),
                        " ".join("%.0f" % x for x in cpu_samples[which])))
                for which in ("ours", "datadog_lambda"):  # the floor sends empty payloads
                    row = totals[which]
                    n = row["invocations"]
                    print("      %-15s %d invocations -> %d requests, %d traces, %d spans (%.2f spans/invocation), "
                          "%d connection(s), %d undecodable" % (which, n, row["requests"], row["traces"], row["spans"],
                                                                row["spans"] / n, row["connections"], row["undecodable"]))

    if args.skip_import:
        return 0
    print("== cold import of the instrumented path (median ms over a bare interpreter, %d runs)" % args.runs)
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(base)
    os.environ.update({"DD_LAMBDA_HANDLER": "bench_app.handler"})
    try:
        statements = {
            "ours": "import otel_dd_lambda.handler",
            "datadog_lambda": "import datadog_lambda.wrapper",
            "dd_handler": "import datadog_lambda.handler",
            # What any handler on OTel pays before its own code: the API alone, then the SDK.
            "floor: otel api": "import opentelemetry.trace",
            "floor: otel sdk": "import opentelemetry.sdk.trace",
        }
        costs = import_cost_ms({k: FAKE_EXTENSION + v for k, v in statements.items()}, runs=args.runs)
        env = import_env()
        rss = {label: proc_rss_kb(statement, env) for label, statement in statements.items()}
        bare = proc_rss_kb("pass", env)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    for label in statements:
        print("  %-16s %7.1f ms   ratio vs datadog_lambda.wrapper %.2fx" % (label, costs[label], costs[label] / costs["datadog_lambda"]))
    print("== RSS after import (MB, /proc/self/status; bare interpreter VmRSS %.1f MB)" % (bare[0] / 1024))
    theirs = rss["datadog_lambda"]
    for label in statements:
        mine = rss[label]
        print("  %-16s VmRSS %6.1f MB (+%5.1f over bare)  ratio over bare %.2fx, totals %.2fx   (peak VmHWM %.1f MB)" % (
            label, mine[0] / 1024, (mine[0] - bare[0]) / 1024, (mine[0] - bare[0]) / (theirs[0] - bare[0]),
            mine[0] / theirs[0], mine[1] / 1024))
    return 0


if __name__ == "__main__":
    sys.exit(main())
