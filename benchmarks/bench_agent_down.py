"""Per-invocation flush cost with the Datadog agent down vs up (issue 9, point 4).

    .venv/bin/python benchmarks/bench_agent_down.py
    BENCH_OURS_PATH=/path/to/other/checkout .venv/bin/python benchmarks/bench_agent_down.py --no-hung

One "invocation" = 10 spans (10 attributes each) ended, then the Lambda processor's synchronous
``force_flush`` with a 3 s budget, as the handler wrapper does. Cases:

* up: a keep-alive sink in a separate process (like the extension) answers 200;
* down: nothing listens on the port (connection refused), in the steady state where the
  exporter's buffer is full (5,000 spans kept, the oldest evicted);
* hung: the agent accepts and never answers, after the first flush reached its deadline.

Target: down <= 1.5x up (aim 1.2x). Medians of alternating blocks, from this one process.
"""

from __future__ import annotations

import logging
import os
import socket
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, List

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.environ.get("BENCH_OURS_PATH") or os.path.join(HERE, ".."))

from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402

from otel_dd_lambda.exporters.datadog import DatadogSpanExporter  # noqa: E402
from otel_dd_lambda.exporters.processor import LambdaSpanProcessor  # noqa: E402

SPANS_PER_INVOCATION = 10
BUDGET_MS = 3000

# A minimal agent: reads each request (Content-Length body) and answers 200, keep-alive.
SINK = r"""
import socket, sys, threading
OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 22\r\n\r\n{"rate_by_service":{}}'
mode = sys.argv[1]
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", 0))
listener.listen(64)
print(listener.getsockname()[1], flush=True)
def serve(conn):
    buf = b""
    while True:
        while b"\r\n\r\n" not in buf:
            data = conn.recv(1 << 20)
            if not data:
                return
            buf += data
        head, _, buf = buf.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        while len(buf) < length:
            data = conn.recv(1 << 20)
            if not data:
                return
            buf += data
        buf = buf[length:]
        if mode == "up":
            conn.sendall(OK)
while True:
    conn, _ = listener.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_sink(mode: str) -> Any:
    proc = subprocess.Popen([sys.executable, "-c", SINK, mode], stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline())
    return proc, "http://127.0.0.1:%d" % port


def attributes(i: int) -> dict:
    return {"attr.%d" % a: ("value-%d-%d" % (i, a)) if a % 2 == 0 else i * a for a in range(10)}


class Function:
    """A provider + Lambda processor + Datadog exporter, as ``configure()`` builds them."""

    def __init__(self, url: str) -> None:
        self.exporter = DatadogSpanExporter(url, mode="agent", timeout=BUDGET_MS / 1000.0)
        self.processor = LambdaSpanProcessor(self.exporter, background=False)
        provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
        provider.add_span_processor(self.processor)
        self.tracer = provider.get_tracer("bench")
        self.n = 0

    def invoke(self) -> float:
        """One invocation's spans and flush; returns the flush's seconds."""
        with self.tracer.start_as_current_span("root", attributes=attributes(self.n)):
            for _ in range(SPANS_PER_INVOCATION - 1):
                self.n += 1
                self.tracer.start_span("child", attributes=attributes(self.n)).end()
        start = time.perf_counter()
        self.processor.force_flush(BUDGET_MS)
        return time.perf_counter() - start


def median_ms(fn: Callable[[], float], runs: int) -> float:
    return statistics.median(fn() for _ in range(runs)) * 1000.0


def main() -> None:
    logging.disable(logging.WARNING)
    with_hung = "--no-hung" not in sys.argv  # (code that waits on a hung agent every time: hours)
    up_sink, up_url = start_sink("up")
    hung_sink, hung_url = start_sink("hung")
    try:
        up = Function(up_url)
        down = Function("http://127.0.0.1:%d" % free_port())
        hung = Function(hung_url)
        first = [f.invoke() for f in (up, down, hung if with_hung else up)]  # cold: first connection
        for _ in range(600):  # fill the down exporter's buffer to its bound (5,000 spans)
            down.invoke()
        for _ in range(3 if with_hung else 0):
            hung.invoke()  # past the probe: now it only looks at the outstanding one
        buffered = down.exporter.buffered_spans
        ups: List[float] = []
        downs: List[float] = []
        hungs: List[float] = []
        ratios = []
        for _ in range(15):
            block_up = median_ms(up.invoke, 20)
            block_down = median_ms(down.invoke, 20)
            block_hung = median_ms(hung.invoke, 20) if with_hung else float("nan")
            ups.append(block_up)
            downs.append(block_down)
            hungs.append(block_hung)
            ratios.append(block_down / block_up)
        up_ms, down_ms, hung_ms = statistics.median(ups), statistics.median(downs), statistics.median(hungs)
        ratio = statistics.median(ratios)
        print("code: %s" % os.path.normpath(os.path.join(
            os.path.dirname(sys.modules[DatadogSpanExporter.__module__].__file__), "..", "..")))
        print("flush per invocation (%d spans each), median ms:" % SPANS_PER_INVOCATION)
        print("  agent up                          %8.3f" % up_ms)
        print("  agent down (refused), %5d kept   %8.3f   ratio %.2fx (target <= 1.5x, aim 1.2x): %s" % (
            buffered, down_ms, ratio, "ok" if ratio <= 1.5 else "MISSED"))
        print("  agent hung (accepts, never answers) %6.3f   ratio %.2fx" % (hung_ms, hung_ms / up_ms))
        print("first flush: up %.1f ms, down %.1f ms" % (first[0] * 1000, first[1] * 1000) + (
            ", hung %.1f ms (waits its deadline, %d ms)" % (first[2] * 1000, BUDGET_MS) if with_hung else ""))
        print("buffered after: up %d, down %d, hung %d; dropped (buffer bound): down %d" % (
            up.exporter.buffered_spans, down.exporter.buffered_spans, hung.exporter.buffered_spans,
            down.exporter.dropped_spans))
    finally:
        for proc in (up_sink, hung_sink):
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
