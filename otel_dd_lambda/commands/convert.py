"""``otel-dd-lambda convert``: one trace context, printed in every format.

The input is auto-detected: a W3C ``traceparent`` (``--tracestate`` may go with it), a JSON
object of headers (Datadog's ``x-datadog-*``; any of the other styles' headers may be in it too,
Datadog's precedence then applies), or an X-Ray ``X-Amzn-Trace-Id`` value (``Root=...``). ``-``
(or no argument) reads the input from stdin. Malformed input: one line on stderr saying what is
wrong, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, List, Optional, Tuple

HELP = "print one trace context (traceparent, Datadog headers JSON or X-Ray header) in every format"
EXIT_BAD_INPUT = 2

_ALL_STYLES = ("datadog", "tracecontext", "xray")


class InputError(ValueError):
    """Malformed input; the message is the one line printed on stderr."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "value",
        nargs="?",
        default="-",
        help="a traceparent, a JSON object of Datadog headers, or an X-Ray header; '-' reads stdin",
    )
    parser.add_argument("--tracestate", help="the W3C tracestate that goes with a traceparent")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


# ------------------------------------------------------------------ input


def _detect(text: str, tracestate: Optional[str]) -> Tuple[str, Dict[str, str]]:
    """``(kind, headers)`` for the input text, or InputError saying what is wrong."""
    if not text:
        raise InputError("empty input: give a traceparent, a JSON object of Datadog headers, or an X-Ray header")
    if text[0] == "{":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InputError("invalid JSON: %s" % exc) from None
        if not isinstance(data, dict):
            raise InputError("JSON input must be an object of header names to values")
        headers = {}
        for key, value in data.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = str(value)  # {"x-datadog-trace-id": 123} is what people type
            if not isinstance(value, str):
                raise InputError("header %r: value must be a string or a number, not %s" % (key, type(value).__name__))
            headers[key] = value
        return "headers", headers
    lowered = text.lower()
    if "root=" in lowered or lowered.startswith("x-amzn-trace-id:"):
        if lowered.startswith("x-amzn-trace-id:"):
            text = text.split(":", 1)[1].strip()
        return "xray", {"X-Amzn-Trace-Id": text}
    if lowered.startswith("traceparent:"):
        text = text.split(":", 1)[1].strip()
    if text.count("-") >= 3:
        headers = {"traceparent": text}
        if tracestate:
            headers["tracestate"] = tracestate
        return "tracecontext", headers
    raise InputError(
        "unrecognised input %r: expected a traceparent (00-<32 hex>-<16 hex>-<2 hex>), "
        "a JSON object of Datadog headers, or an X-Ray header (Root=1-...;Parent=...)" % text[:60]
    )


def _why_traceparent(value: str) -> str:
    parts = value.strip().split("-")
    if len(parts) < 4:
        return "traceparent must have 4 dash-separated fields: version-trace_id-parent_id-flags"
    version, trace_hex, span_hex, flags = parts[:4]
    hexdigits = set("0123456789abcdef")

    def bad_hex(field: str, size: int) -> bool:
        return len(field) != size or not set(field) <= hexdigits

    if bad_hex(version, 2) or version == "ff":
        return "traceparent version %r must be 2 lowercase hex digits, not ff" % version
    if version == "00" and len(parts) != 4:
        return "traceparent version 00 has exactly 4 fields"
    if bad_hex(trace_hex, 32):
        return "traceparent trace id %r must be 32 lowercase hex digits" % trace_hex
    if int(trace_hex, 16) == 0:
        return "traceparent trace id must not be all zeros"
    if bad_hex(span_hex, 16):
        return "traceparent parent id %r must be 16 lowercase hex digits" % span_hex
    if int(span_hex, 16) == 0:
        return "traceparent parent id must not be all zeros"
    if bad_hex(flags, 2):
        return "traceparent flags %r must be 2 lowercase hex digits" % flags
    return "traceparent is malformed"


def _why_datadog(headers: Dict[str, str]) -> str:
    from ..ids import parse_dd_id

    lowered = {k.lower(): v for k, v in headers.items()}
    for name in ("x-datadog-trace-id", "x-datadog-parent-id"):
        value = lowered.get(name)
        if value is None:
            return "%s is missing" % name
        if parse_dd_id(value) is None:
            return "%s %r must be a decimal integer from 1 to 18446744073709551615" % (name, value[:40])
    return "no valid trace context in the headers"


def _why_xray(value: str) -> str:
    from ..ids import parse_hex_span_id, parse_xray_trace_id

    fields = {}
    for item in value.split(";"):
        key, _, val = item.partition("=")
        fields[key.strip().lower()] = val.strip()
    if "root" not in fields:
        return "X-Ray header has no Root=1-<8 hex>-<24 hex>"
    if parse_xray_trace_id(fields["root"]) is None:
        return "X-Ray Root %r must be 1-<8 hex>-<24 hex>, not all zeros" % fields["root"][:40]
    if "parent" not in fields:
        return "X-Ray header has no Parent=<16 hex> (a context needs the parent segment id)"
    if parse_hex_span_id(fields["parent"]) is None:
        return "X-Ray Parent %r must be 16 hex digits, not all zeros" % fields["parent"][:40]
    return "X-Ray header is malformed"


def parse_input(text: str, tracestate: Optional[str] = None) -> Tuple[str, Any, List[Any]]:
    """``(source style, SpanContext, links)`` for the input, or InputError."""
    from opentelemetry import trace

    from ..propagators import DatadogCompositePropagator, get_extracted_links

    text = text.strip()
    kind, headers = _detect(text, tracestate)
    propagator = DatadogCompositePropagator(_ALL_STYLES, _ALL_STYLES)
    context = propagator.extract(headers)
    span_context = trace.get_current_span(context).get_span_context()
    if not span_context.is_valid:
        if kind == "tracecontext":
            raise InputError(_why_traceparent(headers["traceparent"]))
        if kind == "xray":
            raise InputError(_why_xray(headers["X-Amzn-Trace-Id"]))
        raise InputError(_why_datadog(headers))
    return kind, span_context, get_extracted_links(context)


# ------------------------------------------------------------------ output


def describe(span_context: Any, kind: str = "", links: Optional[List[Any]] = None) -> Dict[str, Any]:
    """Everything ``convert`` prints, as a JSON-ready dict."""
    from .. import ids
    from ..propagators import DatadogCompositePropagator, ddstate

    headers = DatadogCompositePropagator(_ALL_STYLES, _ALL_STYLES).headers(span_context)
    state = ddstate.parse_dd_member(span_context.trace_state.get(ddstate.MEMBER_KEY))
    sampled = bool(span_context.trace_flags & 1)
    priority = ddstate.sampling_priority(sampled, state)
    trace_id = span_context.trace_id
    return {
        "input": kind,
        "trace_id": "%032x" % trace_id,
        "span_id": "%016x" % span_context.span_id,
        "sampled": sampled,
        "datadog": {
            "trace_id": str(ids.dd_trace_id(trace_id)),
            "tid": ids.format_tid(trace_id),
            "parent_id": str(span_context.span_id),
            "sampling_priority": priority,
            "origin": state.origin if state else None,
            "tags": dict(state.tags) if state else {},
            # What datadog_lambda's X-Ray integration derives from the same root (63 bits).
            "xray_integration_trace_id": str(ids.dd_trace_id_from_xray_root(trace_id)),
        },
        "xray": {
            "root": ids.format_xray_trace_id(trace_id),
            "parent": "%016x" % span_context.span_id,
            "sampled": ids.xray_sampled_from_priority(priority),
        },
        "headers": headers,
        "links": [
            {"trace_id": "%032x" % link.context.trace_id, "span_id": "%016x" % link.context.span_id,
             **dict(link.attributes or {})}
            for link in links or []
        ],
    }


def format_text(info: Dict[str, Any]) -> str:
    dd = info["datadog"]
    headers = info["headers"]
    lines = [
        "trace id (128-bit hex)    %s" % info["trace_id"],
        "span id (hex)             %s" % info["span_id"],
        "sampled                   %s (Datadog priority %d)"
        % ("yes" if info["sampled"] else "no", dd["sampling_priority"]),
        "",
        "W3C Trace Context",
        "  traceparent: %s" % headers["traceparent"],
        "  tracestate: %s" % headers["tracestate"],
        "",
        "Datadog",
    ]
    lines += ["  %s: %s" % (k, v) for k, v in headers.items() if k.startswith("x-datadog-")]
    lines += [
        "  trace id (decimal, low 64 bits)   %s" % dd["trace_id"],
        "  _dd.p.tid (high 64 bits)          %s" % (dd["tid"] or "(none: a 64-bit trace id)"),
        "  parent id (decimal)               %s" % dd["parent_id"],
        "  via datadog_lambda's X-Ray merge  %s" % dd["xray_integration_trace_id"],
        "",
        "AWS X-Ray",
        "  X-Amzn-Trace-Id: %s" % headers["X-Amzn-Trace-Id"],
    ]
    for link in info["links"]:
        lines += ["", "also found (span link, %s): trace %s span %s" % (
            link.get("context_headers"), link["trace_id"], link["span_id"])]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    text = args.value
    if text == "-":
        text = sys.stdin.read()
    try:
        kind, span_context, links = parse_input(text, args.tracestate)
    except InputError as exc:
        print("otel-dd-lambda convert: error: %s" % str(exc).replace("\n", " "), file=sys.stderr)
        return EXIT_BAD_INPUT
    info = describe(span_context, kind, links)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(format_text(info))
    return 0
