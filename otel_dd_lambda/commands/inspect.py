"""``otel-dd-lambda inspect EVENT.json``: which trigger an event is, the context(s) it carries in
every format, the links of a batch, and why a malformed carrier was ignored."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any, Dict, List

HELP = "show which trigger a Lambda event is, the contexts and links it carries"


class _Reasons(logging.Handler):
    """Collects the debug messages that explain why a carrier was ignored."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.messages.append(record.getMessage())
        except Exception:
            pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("event", help="a Lambda event as JSON (a file, or - for standard input)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def _formats(span_context: Any) -> Dict[str, Any]:
    from .. import ids
    from ..injection import get_trace_headers
    from ..propagators import ddstate

    headers = get_trace_headers(span_context)
    state = ddstate.parse_dd_member(span_context.trace_state.get(ddstate.MEMBER_KEY))
    return {
        "traceparent": "00-%032x-%016x-%02x" % (span_context.trace_id, span_context.span_id, span_context.trace_flags),
        "tracestate": span_context.trace_state.to_header() or None,
        "datadog": {
            "trace_id": str(ids.dd_trace_id(span_context.trace_id)),
            "parent_id": str(span_context.span_id),
            "sampling_priority": ddstate.sampling_priority(span_context.trace_flags.sampled, state),
            "tags": headers.get("x-datadog-tags"),
            "origin": state.origin if state else None,
        },
        "xray": headers.get("X-Amzn-Trace-Id"),
    }


def run(args: argparse.Namespace) -> int:
    try:
        if args.event == "-":
            event = json.load(sys.stdin)
        else:
            with open(args.event, "rb") as f:
                event = json.load(f)
    except (OSError, ValueError) as exc:
        print("otel-dd-lambda inspect: cannot read %s as JSON: %s" % (args.event, str(exc).splitlines()[0]), file=sys.stderr)
        return 2

    from ..extract import extract_context

    handler = _Reasons()
    loggers = [logging.getLogger(name) for name in ("otel_dd_lambda", "otel_dd_lambda.propagators", "otel_dd_lambda.carriers")]
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
    logging.getLogger("otel_dd_lambda").addHandler(handler)
    try:
        result = extract_context(event)
        report = {
            "trigger": result.trigger,
            "trigger_tags": result.trigger_tags,
            "source": result.source,
            "parent": _formats(result.parent) if result.parent is not None else None,
            "links": [
                dict(_formats(link.context), attributes=dict(link.attributes or {})) for link in result.links
            ],
            "event_time_ns": result.event_time_ns,
            "ignored": list(dict.fromkeys(handler.messages)),
        }
    finally:
        logging.getLogger("otel_dd_lambda").removeHandler(handler)
        for lg, level in saved:
            lg.setLevel(level)

    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print("trigger:  %s" % (report["trigger"] or "unknown"))
    for key, value in report["trigger_tags"].items():
        print("  %s = %s" % (key, value))
    if report["parent"] is None:
        print("parent:   none (a new trace)")
    else:
        print("parent:   from %s" % report["source"])
        _print_formats(report["parent"], "  ")
    for index, link in enumerate(report["links"]):
        print("link %d:   %s" % (index, ", ".join("%s=%s" % kv for kv in link["attributes"].items())))
        _print_formats(link, "  ")
    for reason in report["ignored"]:
        print("ignored:  %s" % reason)
    return 0


def _print_formats(formats: Dict[str, Any], indent: str) -> None:
    print("%straceparent  %s" % (indent, formats["traceparent"]))
    if formats["tracestate"]:
        print("%stracestate   %s" % (indent, formats["tracestate"]))
    dd = formats["datadog"]
    print("%sdatadog      trace_id=%s parent_id=%s priority=%s tags=%s%s" % (
        indent, dd["trace_id"], dd["parent_id"], dd["sampling_priority"], dd["tags"] or "-",
        " origin=%s" % dd["origin"] if dd["origin"] else ""))
    print("%sx-ray        %s" % (indent, formats["xray"]))
