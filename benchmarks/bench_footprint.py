"""Per-invocation code footprint: how much distinct Python code one invocation runs.

    .venv/bin/python benchmarks/bench_footprint.py [--events api-gateway.json,...] [--top 25]

Why it is measured: instruction counts (``bench_instructions.py``) put ours at 1.8x the OTel SDK
floor for an SQS batch of 10, yet CPU time puts it at about 2x and more. The gap is not in the
count: in the interpreter's loop (``_PyEval_EvalFrameDefault``) ours and the floor execute about
the same number of machine instructions per invocation (0.20 M, callgrind), but ours spends 2.0
to 2.5 times as long there (``perf record -e cpu-clock`` samples over 30,000 invocations). The
floor's Python work is mostly a few SDK loops (one attribute set after another) run many times;
ours is a long path of rules, each run once per invocation. A CPU predicts branches and keeps caches warm for the former, not the
latter: time grows with the distinct code an invocation runs, not only with its length.

``--calibrate`` shows the effect apart from this package: generated Python code doing the same
work (about the same bytecodes and instructions: within 5% under callgrind) as 400 distinct
functions called once each, or as 8 of them called 50 times each; CPU time per run of each, in
fresh processes.

So this prints, per side and event, one invocation (after 20 warm-up calls) as seen by
``sys.settrace`` with opcode events: the bytecodes executed, the distinct bytecode sites among
them (code object and offset), the distinct functions, and the calls. It is deterministic: no
clock, same counts on every machine. ``--top N`` lists ours's functions by distinct sites.

Sides, child and sink as in ``bench_wrapper.py`` (agent mode, each invocation exporting to a
loopback sink): ours, ``datadog_lambda`` (ddtrace does part of its work in compiled code, which
this does not see), the floor and the floor sending the two spans.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from typing import Dict, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_wrapper import CHILD, EVENTS, counted_child_env, sink_running  # noqa: E402

# bench_wrapper's child up to its timing loop: the event, the context, and ``call`` for a side
_SETUP = CHILD.split("for _ in range(20):")[0]
_TRACE = r'''
import collections
top = int(sys.argv[4])
for _ in range(20):
    call(event, ctx)
executed = 0
sites = collections.Counter()
entered = collections.Counter()

def _opcodes(frame, what, arg):
    global executed
    if what == "opcode":
        executed += 1
        sites[(frame.f_code, frame.f_lasti)] += 1
    return _opcodes

def _calls(frame, what, arg):
    frame.f_trace_opcodes = True
    frame.f_trace_lines = False
    entered[frame.f_code] += 1
    return _opcodes

sys.settrace(_calls)
call(event, ctx)
sys.settrace(None)
per_function = collections.Counter()
for (code, _), _count in sites.items():
    if "otel_dd_lambda" in code.co_filename:
        name = code.co_filename.split("otel_dd_lambda", 1)[1].lstrip("/") + ":" + code.co_qualname
        per_function[name] += 1
print(json.dumps({"executed": executed, "sites": len(sites), "functions": len(entered),
                  "calls": sum(entered.values()), "top": per_function.most_common(top)}))
'''
SIDES = ("ours", "datadog_lambda", "floor", "floor_wire")


def footprint(side: str, event: str, top: int, env: dict, cwd: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", _SETUP + _TRACE, side, event, "0", str(top)],
                          env=env, capture_output=True, text=True, cwd=cwd)
    if proc.returncode:
        sys.stderr.write(proc.stderr[-2000:])
        raise SystemExit("%s failed on %s" % (side, event))
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --calibrate: one generated module; ``run_distinct`` calls its 400 functions once each,
# ``run_repeated`` calls the first 8 of them 50 times each (about the same work).
_STATEMENTS = (
    'y = d.get("a{k}", 0) + x',
    'if y > {k}:\n        d["b{k}"] = y\n    else:\n        d["c{k}"] = y * 2',
    't = (y, x, {k})',
    'y = t[{m}] if len(t) > {m} else y',
    's = "k%d" % y',
    'y = y + len(s)',
    'l = [y, x]',
    'l.append({k})',
    'y = sum(l) & 15',
    'y = -y if y & 1 else y >> 1',
    'x = x ^ {k}',
    'y = max(y, x)',
    'y = d.setdefault("z{k}", y)',
    'y = y * 3 + 1 if y < 40 else y - 7',
)
_CALIBRATION_RUN = r'''
import sys, time
sys.path.insert(0, sys.argv[1])
import generated
run, n = getattr(generated, sys.argv[2]), int(sys.argv[3])
d = {}
for _ in range(200):
    run(d)
start = time.process_time()
for _ in range(n):
    run(d)
print((time.process_time() - start) / max(n, 1) * 1e6)
'''


def _generate(directory: str) -> None:
    rng = random.Random(1)  # the same module every run
    lines = []
    for index in range(400):
        body = ["t = (x,)", "y = x", "l = [x]", 's = ""']
        body += [rng.choice(_STATEMENTS).format(k=rng.randint(0, 9), m=rng.randint(0, 2))
                 for _ in range(rng.randint(5, 9))]
        lines.append("def f%d(d, x):\n    %s\n    return y & 7\n" % (index, "\n    ".join(body)))
    for name, pick in (("run_distinct", lambda i: i), ("run_repeated", lambda i: i % 8)):
        lines.append("def %s(d):\n    x = 0\n%s    return x\n"
                     % (name, "".join("    x = f%d(d, x)\n" % pick(i) for i in range(400))))
    with open(os.path.join(directory, "generated.py"), "w") as out:
        out.write("\n".join(lines))


def calibrate(processes: int = 5) -> None:
    directory = tempfile.mkdtemp(prefix="bench-footprint-gen-")
    _generate(directory)
    runs = ("run_repeated", "run_distinct")
    print("== the same work as repeated or as distinct code (generated; CPU time, median of %d processes)" % processes)
    instructions: Dict[str, float] = {}
    if shutil.which("valgrind"):
        for run in runs:
            counts = []
            for n in (0, 100):
                proc = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + os.devnull,
                                       sys.executable, "-c", _CALIBRATION_RUN, directory, run, str(n)],
                                      capture_output=True, text=True)
                found = re.search(r"Collected : (\d+)", proc.stderr)
                if proc.returncode or not found:
                    raise SystemExit("calibration failed under callgrind: " + proc.stderr[-500:])
                counts.append(int(found.group(1)))
            instructions[run] = (counts[1] - counts[0]) / 100
    times: Dict[str, List[float]] = {run: [] for run in runs}
    for _ in range(processes):
        for run in runs:  # alternating: both sides see the same machine
            out = subprocess.run([sys.executable, "-c", _CALIBRATION_RUN, directory, run, "3000"],
                                 capture_output=True, text=True, check=True)
            times[run].append(float(out.stdout))
    for run in runs:
        label = "8 functions, 50 calls each" if run == "run_repeated" else "400 functions, one call each"
        count = " %6.2f M instructions" % (instructions[run] / 1e6) if run in instructions else ""
        print("      %-30s %7.1f µs%s" % (label, statistics.median(times[run]), count))
    ratio = statistics.median(times["run_distinct"]) / statistics.median(times["run_repeated"])
    print("      distinct / repeated: %.2fx the time" % ratio
          + (", %.2fx the instructions" % (instructions["run_distinct"] / instructions["run_repeated"])
             if instructions else ""))
    shutil.rmtree(directory, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", default=",".join(EVENTS))
    parser.add_argument("--top", type=int, default=0, help="list ours's N functions with the most distinct sites")
    parser.add_argument("--calibrate", action="store_true",
                        help="also time the same work as repeated and as distinct generated code")
    args = parser.parse_args()
    app_dir = tempfile.mkdtemp(prefix="bench-footprint-app-")
    with sink_running(counted_child_env(app_dir)) as env:
        print("== code run by one invocation (sys.settrace opcode events; deterministic)")
        print("      %-15s %9s %15s %10s %6s" % ("", "bytecodes", "distinct sites", "functions", "calls"))
        for event in args.events.split(","):
            print("  %s" % event)
            counts = {side: footprint(side, event, args.top, env, app_dir) for side in SIDES}
            floor = counts["floor"]
            for side in SIDES:
                c = counts[side]
                print("      %-15s %9d %8d %5.1fx %10d %6d" % (side, c["executed"], c["sites"],
                                                             c["sites"] / floor["sites"], c["functions"], c["calls"]))
            if args.top:
                print("      ours's functions by distinct sites:")
                for name, count in counts["ours"]["top"]:
                    print("        %5d  %s" % (count, name))
    if args.calibrate:
        calibrate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
