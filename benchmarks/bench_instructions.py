"""Per-invocation cost in CPU instructions (valgrind callgrind): deterministic where wall clock is not.

    .venv/bin/python benchmarks/bench_instructions.py [--calls 100] [--events api-gateway.json,...]

On a shared 2-core machine, wall-clock medians of one invocation swing by tens of percent between
runs; instruction counts do not (``PYTHONHASHSEED=0``), so before/after comparisons of the
package use them. Each figure is one child process run N times and 0 times under callgrind (the
same set-up both times), the difference divided by N: instructions per invocation, in user space
(system calls are not counted, so a round trip to the sink costs its Python and C work only).

Rows, per event (``bench_wrapper.py``'s events, agent mode against its separate-process sink;
``--events sqs-batch.json:single,sqs-batch.json`` adds a one-record SQS event beside the batch of 10):

* ``ours``: ``configure()`` + ``instrument_handler`` around a no-op handler, each call exporting;
* ``datadog_lambda``: its wrapper (ddtrace's synchronous writer) around the same handler;
* ``floor``: the OTel SDK doing the two spans (37 attributes, the batch's links with their message
  ids) and one round trip of an empty payload (``bench_wrapper.py``'s floor);
* ``floor + wire``: the same, sending the two spans with their attributes packed as they are;
* ``extract``: ``extract_context`` alone; ``flush``: mapping, encoding and sending the two spans
  (the processor's ``force_flush``).

With ``--parts``, ours is also split: the invocation without its flush (wrapper, extraction, the
SDK's spans), and the flush's mapping, encoding (msgpack) and sending (the rest of ``force_flush``).
The parts, ``extract`` and ``flush`` are counted with the cyclic garbage collector off, so that one
collection does not land in one part's count and not another's; the whole rows keep it.

Then the cold start, as ``bench_cold_start.py`` defines it (import + ``configure()`` + the first API
Gateway invocation, each side in its deployed-shape venv), in instructions over a bare interpreter
of the same venv: ours, ``datadog_lambda``, the floor, the floor + Datadog wire, and that + a global
propagator; counted to the end of the first invocation (the process then ends with ``os._exit``,
as a Lambda sandbox never runs the interpreter's teardown), and for the whole process. Each is
counted once its bytecode is compiled (a warm-up run first). ``--no-cold-start`` skips it
(building the venvs needs PyPI the first time).

Needs valgrind (``apt-get install valgrind``); without it, prints a line saying so and exits 0.
Set ``BENCH_OURS_PATH`` to measure another copy of the package (before/after comparisons; the
cold start always measures the venv built from this tree).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Dict, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_cold_start  # noqa: E402
from bench_deployed import CACHE, ensure_ours, ensure_pip_venv  # noqa: E402
from bench_wrapper import CHILD, EVENTS, counted_child_env, sink_running  # noqa: E402

# bench_wrapper's child up to its timing loop: the event, the context, and ``call`` for a side
_SETUP = CHILD.split("for _ in range(20):")[0]
_MODES = r'''
mode, n = sys.argv[4], int(sys.argv[3])
for _ in range(20):
    call(event, ctx)
if mode != "call":
    import gc
    from otel_dd_lambda.extract import extract_context
    provider = call.instrumentation.provider
    processor = provider._active_span_processor._span_processors[0]
    exporter, mapper = processor.exporter, processor.exporter._mapper
    if mode != "extract":
        call.instrumentation.flush = False
        call(event, ctx)
        spans = list(processor._spans)
    # parts are counted without the cyclic collector, so that no collection lands in one part's
    # count and not in another's (whole invocations, the "call" mode, keep it)
    gc.collect()
    gc.disable()
    for _ in range(n):
        if mode == "extract":
            extract_context(event, ctx)
        elif mode == "flush":
            processor._spans[:] = spans
            processor.force_flush(1000)
        elif mode == "unflushed":
            call(event, ctx)
            processor._spans.clear()
        elif mode == "map":
            mapper.map_chunks(spans)
        else:  # map_encode
            exporter._encode(mapper.map_chunks(spans))
else:
    for _ in range(n):
        call(event, ctx)
'''
# --parts: where an invocation of ours goes; each a mode of _MODES above
PARTS = ("unflushed", "map", "map_encode")
ROWS = (("ours", "ours"), ("datadog_lambda", "datadog_lambda"), ("floor", "floor"), ("floor + wire", "floor_wire"), ("extract", "ours"),
        ("flush", "ours"))


def instructions(python: str, side: str, event: str, calls: int, mode: str, env: dict, cwd: str) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-cg-") as tmp:
        proc = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + os.path.join(tmp, "out"),
             python, "-c", _SETUP + _MODES, side, event, str(calls), mode],
            env=env, capture_output=True, text=True, cwd=cwd)
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if proc.returncode or not found:
        sys.stderr.write(proc.stderr[-2000:])
        raise SystemExit("%s/%s failed on %s" % (side, mode, event))
    return int(found.group(1))


def callgrind_total(python: str, code: str, env: Dict[str, str]) -> int:
    """Instructions of one ``python -c code`` process under callgrind (the whole process)."""
    with tempfile.TemporaryDirectory(prefix="bench-cg-") as tmp:
        proc = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + os.path.join(tmp, "out"),
                               python, "-c", code], env=env, capture_output=True, text=True)
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if proc.returncode or not found:
        sys.stderr.write(proc.stderr[-2000:])
        raise SystemExit("cold start failed under callgrind")
    return int(found.group(1))


COLD_ROWS = (("ours", "ours"), ("datadog_lambda", "datadog_lambda"), ("floor", "floor"),
             ("floor + wire", "floor_wire"), ("+ propagator", "floor_wire_propagator"))


# Appended to a cold-start row (and the bare interpreter) to count it to the end of its first
# invocation: a Lambda sandbox never runs the interpreter's teardown (it is frozen, then killed).
_END_AT_MARK = "\nimport os as _os\n_os._exit(0)\n"


def cold_start_instructions() -> Optional[Dict[str, Dict[str, int]]]:
    """Per cold-start row, instructions over a bare interpreter of its venv, to the end of the
    first invocation ("cold") and for the whole process ("whole"); None without venvs."""
    os.makedirs(CACHE, exist_ok=True)
    try:
        pythons = {"ours": ensure_ours(False), "datadog_lambda": ensure_pip_venv("theirs", "datadog-lambda", False)}
    except subprocess.CalledProcessError as error:
        print("== cold start: SKIPPED, the deployed-shape venvs could not be built (no package index?): %s" % error)
        return None
    codes, env = bench_cold_start.setup()
    env["PYTHONHASHSEED"] = "0"
    with sink_running(env) as env:
        out: Dict[str, Dict[str, int]] = {"cold": {}, "whole": {}}
        bare: Dict[str, Dict[str, int]] = {}
        for label, key in COLD_ROWS:
            python = pythons.get(key, pythons["ours"])
            subprocess.run([python, "-c", codes[key]], env=env, capture_output=True, check=True)  # bytecode
            if python not in bare:
                bare[python] = {"cold": callgrind_total(python, "pass" + _END_AT_MARK, env),
                                "whole": callgrind_total(python, "pass", env)}
            out["cold"][label] = callgrind_total(python, codes[key] + _END_AT_MARK, env) - bare[python]["cold"]
            out["whole"][label] = callgrind_total(python, codes[key], env) - bare[python]["whole"]
        return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--events", default=",".join(EVENTS))
    parser.add_argument("--no-cold-start", action="store_true")
    parser.add_argument("--parts", action="store_true",
                        help="also split ours: the invocation without its flush, mapping, encoding, sending")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: no instruction counts (apt-get install valgrind)")
        return 0
    app_dir = tempfile.mkdtemp(prefix="bench-cg-app-")
    with sink_running(counted_child_env(app_dir)) as env:
        print("== instructions per invocation (callgrind, %d calls minus 0)" % args.calls)
        for event in args.events.split(","):
            counts = {}
            for label, side in ROWS:
                mode = label if label in ("extract", "flush") else "call"
                zero = instructions(sys.executable, side, event, 0, mode, env, app_dir)
                many = instructions(sys.executable, side, event, args.calls, mode, env, app_dir)
                counts[label] = (many - zero) / args.calls
            floor = counts["floor"]
            print("  %s" % event)
            for label, _ in ROWS:
                print("      %-15s %10.0f   %.2fx the floor" % (label, counts[label], counts[label] / floor))
            if args.parts:
                part = {mode: (instructions(sys.executable, "ours", event, args.calls, mode, env, app_dir)
                               - instructions(sys.executable, "ours", event, 0, mode, env, app_dir)) / args.calls
                        for mode in PARTS}
                print("      ours, in parts (garbage collection off):")
                for label, value in (("without flush", part["unflushed"]),
                                     ("  of which extract", counts["extract"]),
                                     ("flush", counts["flush"]),
                                     ("  map", part["map"]),
                                     ("  encode", part["map_encode"] - part["map"]),
                                     ("  send and the rest", counts["flush"] - part["map_encode"])):
                    print("        %-20s %10.0f   %.2fx the floor" % (label, value, value / floor))
    if not args.no_cold_start:
        cold = cold_start_instructions()
        if cold:
            for phase, title in (("cold", "to the end of the first invocation"),
                                ("whole", "the whole process, with the interpreter's teardown (never run in Lambda)")):
                counts = cold[phase]
                floor = counts["floor"]
                print("== cold start in instructions over a bare interpreter (import + configure + first invocation, "
                      "deployed-shape venvs): %s" % title)
                for label, _ in COLD_ROWS:
                    print("      %-15s %8.1f M   floor + %5.1f M (%+.1f%%)   %.2fx datadog_lambda"
                          % (label, counts[label] / 1e6, (counts[label] - floor) / 1e6,
                             100.0 * (counts[label] - floor) / floor, counts[label] / counts["datadog_lambda"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
