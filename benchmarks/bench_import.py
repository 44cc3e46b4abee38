"""Cold-import cost, measured the only honest way: fresh interpreters.

``import_cost_ms({"ours": "import otel_dd_lambda.propagators", ...})`` runs each statement in
``runs`` fresh subprocesses of this interpreter, interleaved with a bare interpreter (``pass``)
so that machine noise hits every candidate alike, and returns the median wall time of each
statement minus the median of the bare interpreter, in milliseconds.

Other benchmarks import this module (``from bench_import import import_cost_ms``); run as a
script it compares the package's entry points with the reference libraries:

    python benchmarks/bench_import.py [--runs 17] ["label=statement" ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Mapping, Optional, Sequence

BARE = "__bare__"


def _env() -> Dict[str, str]:
    env = dict(os.environ)
    # Bytecode is cached after the first run; what is measured is a warm-disk cold start, as
    # in a Lambda container after its first invocation's files are in the page cache.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    return env


def _run_once(statement: str, python: str, env: Mapping[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([python, "-c", statement], env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def import_cost_ms(
    statements: Mapping[str, str],
    runs: int = 17,
    python: Optional[str] = None,
    warmup: int = 1,
) -> Dict[str, float]:
    """Median extra wall time (ms) of each statement over a bare interpreter, side by side."""
    python = python or sys.executable
    env = _env()
    labels: List[str] = [BARE, *statements]
    code = {BARE: "pass", **statements}
    samples: Dict[str, List[float]] = {label: [] for label in labels}
    for label in labels:  # compile bytecode, fail early on a broken statement
        for _ in range(warmup):
            _run_once(code[label], python, env)
    for i in range(runs):
        # Rotate the order each round so no candidate always runs right after another.
        order = labels[i % len(labels):] + labels[: i % len(labels)]
        for label in order:
            samples[label].append(_run_once(code[label], python, env))
    bare = statistics.median(samples[BARE])
    result = {label: (statistics.median(samples[label]) - bare) * 1000.0 for label in statements}
    result[BARE] = bare * 1000.0
    return result


def format_table(result: Mapping[str, float], baseline: Optional[str] = None) -> str:
    rows = ["%-44s %10s %8s" % ("import", "ms", "ratio" if baseline else "")]
    base = result.get(baseline) if baseline else None
    for label, ms in result.items():
        if label == BARE:
            continue
        ratio = "%.2fx" % (ms / base) if base else ""
        rows.append("%-44s %10.1f %8s" % (label, ms, ratio))
    rows.append("%-44s %10.1f" % ("(bare interpreter, absolute)", result[BARE]))
    return "\n".join(rows)


DEFAULT_STATEMENTS = {
    "opentelemetry.trace + aws xray propagator": (
        "import opentelemetry.trace, opentelemetry.propagators.aws.aws_xray_propagator"
    ),
    "otel_dd_lambda.propagators": "import otel_dd_lambda.propagators",
    "otel_dd_lambda.ids": "import otel_dd_lambda.ids",
    "opentelemetry.sdk.trace": "import opentelemetry.sdk.trace",
    "ddtrace.propagation.http": "import ddtrace.propagation.http",
}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=17)
    parser.add_argument("statements", nargs="*", help="label=statement (default: the package's imports)")
    args = parser.parse_args(argv)
    statements = dict(s.split("=", 1) for s in args.statements) if args.statements else DEFAULT_STATEMENTS
    result = import_cost_ms(statements, runs=args.runs)
    print(format_table(result, baseline=next(iter(statements))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
