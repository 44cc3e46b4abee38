"""Propagator speed against ddtrace's ``HTTPPropagator``, side by side in one process.

Both sides use the Datadog and W3C styles and the same headers (written by ddtrace: 128-bit
trace id, priority 2, an origin, ``_dd.p.dm`` and a user tag). Each figure is the median over
``--rounds`` rounds of the mean time per call; the rounds of the candidates are interleaved so
machine noise hits them alike. Then the cold-import cost of ``otel_dd_lambda.propagators`` is
compared with OTel's trace API plus the upstream X-Ray propagator (fresh interpreters, see
``bench_import``); the target is on importing the composite propagator.

Targets (issue 2): inject <= 0.5x ddtrace, extract <= 0.35x ddtrace, import <= 1.1x.

    python benchmarks/bench_propagators.py [--rounds 15] [--import-runs 17] [--no-import]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import timeit
from typing import Callable, Dict, List, Sequence

# ddtrace reads its propagation styles when first imported.
os.environ["DD_TRACE_PROPAGATION_STYLE"] = "datadog,tracecontext"
os.environ.pop("DD_TRACE_PROPAGATION_STYLE_EXTRACT", None)
os.environ.pop("DD_TRACE_PROPAGATION_STYLE_INJECT", None)
os.environ.pop("_X_AMZN_TRACE_ID", None)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

TARGETS = {"inject": 0.5, "extract": 0.35, "import": 1.1}


def _per_call_us(fn: Callable[[], object], number: int) -> float:
    return timeit.timeit(fn, number=number) / number * 1e6


def compare(cases: Dict[str, Callable[[], object]], rounds: int, number: int) -> Dict[str, float]:
    samples: Dict[str, List[float]] = {name: [] for name in cases}
    for fn in cases.values():  # warm caches and lazy imports
        _per_call_us(fn, number // 10 or 1)
    for i in range(rounds):
        names = list(cases)
        names = names[i % len(names):] + names[: i % len(names)]
        for name in names:
            samples[name].append(_per_call_us(cases[name], number))
    return {name: statistics.median(values) for name, values in samples.items()}


def main(argv: Sequence[str] = None) -> int:  # type: ignore[assignment]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--number", type=int, default=3000, help="calls per round")
    parser.add_argument("--import-runs", type=int, default=17)
    parser.add_argument("--no-import", action="store_true")
    args = parser.parse_args(argv)

    from ddtrace import config as dd_config
    from ddtrace.propagation.http import HTTPPropagator
    from ddtrace.trace import Context as DDContext
    from opentelemetry import trace
    from opentelemetry.propagate import get_global_textmap  # noqa: F401  (OTel's own loading)
    from opentelemetry.propagators.aws import AwsXRayPropagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    from otel_dd_lambda.propagators import DatadogCompositePropagator, DatadogPropagator

    dd_config._propagation_style_extract = ["datadog", "tracecontext"]
    dd_config._propagation_style_inject = ["datadog", "tracecontext"]

    dd_context = DDContext(
        trace_id=(0x68A1B2C3 << 96) | 0x1D2B3C4D5E6F7081,
        span_id=0x2A3B4C5D6E7F8091,
        sampling_priority=2,
        dd_origin="synthetics",
        meta={"_dd.p.dm": "-4", "_dd.p.usr.id": "baz64"},
    )
    carrier: Dict[str, str] = {}
    HTTPPropagator.inject(dd_context, carrier)
    # What a Lambda sees from API Gateway: the trace headers among ordinary ones.
    http_headers = {
        "Accept": "*/*",
        "Host": "abc.execute-api.us-east-1.amazonaws.com",
        "User-Agent": "curl/8.5.0",
        "X-Forwarded-For": "203.0.113.7",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
        **{k.title(): v for k, v in carrier.items()},
    }

    ours = DatadogCompositePropagator(("datadog", "tracecontext"), ("datadog", "tracecontext"))
    from otel_dd_lambda import config

    # All four styles (datadog, tracecontext, carrier X-Ray, Lambda's _X_AMZN_TRACE_ID, unset here).
    ours_default = DatadogCompositePropagator(config.DEFAULT_STYLES, config.DEFAULT_STYLES)
    otel_context = ours.extract(carrier)
    span_context = trace.get_current_span(otel_context).get_span_context()
    assert span_context.trace_id == dd_context.trace_id, "bench setup: extraction disagrees"
    dd_extracted = HTTPPropagator.extract(carrier)
    w3c = TraceContextTextMapPropagator()
    xray = AwsXRayPropagator()
    datadog_only = DatadogPropagator()

    def dd_inject() -> None:
        HTTPPropagator.inject(dd_extracted, {})

    def our_inject() -> None:
        ours.inject({}, otel_context)

    extract_cases = {
        "ddtrace HTTPPropagator.extract": lambda: HTTPPropagator.extract(carrier),
        "ours composite.extract (dd+w3c)": lambda: ours.extract(carrier),
        "ours composite.extract_from_reader": lambda: ours.extract_from_reader(carrier.get),
        "ours composite.extract (all 4 styles)": lambda: ours_default.extract(carrier),
        "ours composite.extract (API GW headers)": lambda: ours.extract(http_headers),
        "ours DatadogPropagator.extract": lambda: datadog_only.extract(carrier),
        "otel W3C extract (reference)": lambda: w3c.extract(carrier),
        "otel AwsXRay extract (reference)": lambda: xray.extract(
            {"X-Amzn-Trace-Id": "Root=1-68a1b2c3-000000001d2b3c4d5e6f7081;Parent=2a3b4c5d6e7f8091;Sampled=1"}
        ),
    }
    inject_cases = {
        "ddtrace HTTPPropagator.inject": dd_inject,
        "ours composite.inject (dd+w3c)": our_inject,
        "ours composite.headers(span_context)": lambda: ours.headers(span_context),
        "ours composite.inject (dd+w3c+xray)": lambda: ours_default.inject({}, otel_context),
        "otel W3C inject (reference)": lambda: w3c.inject({}, otel_context),
    }
    extract = compare(extract_cases, args.rounds, args.number)
    inject = compare(inject_cases, args.rounds, args.number)

    ok = True
    print("%-44s %10s %8s" % ("extract (median per call)", "us", "ratio"))
    base = extract["ddtrace HTTPPropagator.extract"]
    for name, us in extract.items():
        print("%-44s %10.2f %7.2fx" % (name, us, us / base))
    print()
    print("%-44s %10s %8s" % ("inject (median per call)", "us", "ratio"))
    base_i = inject["ddtrace HTTPPropagator.inject"]
    for name, us in inject.items():
        print("%-44s %10.2f %7.2fx" % (name, us, us / base_i))
    ratio_e = extract["ours composite.extract (dd+w3c)"] / base
    ratio_i = inject["ours composite.inject (dd+w3c)"] / base_i
    ok &= ratio_e <= TARGETS["extract"] and ratio_i <= TARGETS["inject"]
    print()
    print("extract ratio %.2fx (target <= %.2fx)  inject ratio %.2fx (target <= %.2fx)"
          % (ratio_e, TARGETS["extract"], ratio_i, TARGETS["inject"]))

    if not args.no_import:
        from bench_import import format_table, import_cost_ms

        reference = "opentelemetry.trace + aws xray propagator"
        # The package's __init__ is lazy (PEP 562), so a bare `import otel_dd_lambda.propagators`
        # loads no propagator: the target is measured on the composite, which does the whole job
        # (every style; the X-Ray class itself is imported with XRayPropagator only).
        ours = "otel_dd_lambda.propagators composite"
        result = import_cost_ms(
            {
                reference: "import opentelemetry.trace, opentelemetry.propagators.aws.aws_xray_propagator",
                ours: "from otel_dd_lambda.propagators import DatadogCompositePropagator",
                "otel_dd_lambda.propagators (bare)": "import otel_dd_lambda.propagators",
                "all three propagator classes": "from otel_dd_lambda.propagators import "
                "DatadogCompositePropagator, DatadogPropagator, XRayPropagator",
            },
            runs=args.import_runs,
        )
        print()
        print(format_table(result, baseline=reference))
        ratio = result[ours] / result[reference]
        ok &= ratio <= TARGETS["import"]
        print("import ratio %.2fx (target <= %.2fx)" % (ratio, TARGETS["import"]))
    print()
    print("targets met" if ok else "TARGETS NOT MET")
    return 0


if __name__ == "__main__":
    sys.exit(main())
