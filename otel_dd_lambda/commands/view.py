"""``otel-dd-lambda view [FILE|-]``: the traces in log-mode output, drawn as a text waterfall.

Log mode (``DD_FLUSH_TO_LOG=true``, for the Datadog Forwarder) prints ``{"traces": [[span, ...]]}``
lines. They are found wherever they are: alone on a line, after the tab-separated timestamp and
request id of CloudWatch Logs (and its exports), after the prefixes of ``sam logs`` and ``aws logs
tail``, or inside a JSON-format log record's ``message``; other lines are passed over. A line cut
short keeps the spans that were complete in it.

Each trace is a tree of spans with durations on a time axis, errors marked, span links listed,
and every id in its Datadog (decimal), X-Ray and W3C forms (conversions from ``otel_dd_lambda.ids``).
``--json`` prints the same as one JSON object. The input is untrusted and read as ``inspect``
reads events: regular files only, at most 6 MB, one line on stderr and exit code 2 when it cannot
be read, control characters escaped. This module is also the demo's renderer.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, Iterator, List, Optional, Set, TextIO, Tuple

from .. import ids
from .inspect import InputError, escape, fail, read_input, safe_streams

HELP = "draw the traces in log-mode output (DD_FLUSH_TO_LOG, CloudWatch Logs) as text waterfalls"
PREFIX = "otel-dd-lambda view: "
MARKER = '{"traces"'
BAR_WIDTH = 40
MAX_INDENT = 16  # a deeper tree is drawn at this depth, its real depth written beside it
_DECODER = json.JSONDecoder()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", default="-", metavar="FILE",
                        help="log-mode output: a file, or - (the default) for standard input; CloudWatch "
                             "Logs exports, `sam logs` and `aws logs tail` output work as they are")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--no-ids", action="store_true", help="leave out each span's id lines")


# ------------------------------------------------------------------ reading


class Span:
    """One span of a log line, checked: ids and times are ints, texts are str."""

    __slots__ = ("trace_low", "span_id", "parent_id", "start", "duration", "error", "name", "service",
                 "resource", "type", "meta", "metrics", "trace_id", "sampled", "line")

    def __init__(self, raw: Dict[str, Any], line: int) -> None:
        self.trace_low = _id(raw.get("trace_id"))
        self.span_id = _id(raw.get("span_id"))
        self.parent_id = _id(raw.get("parent_id"), zero=True)
        self.start = _int(raw.get("start"))
        self.duration = max(0, _int(raw.get("duration")))
        self.error = _int(raw.get("error")) != 0
        self.name = _text(raw.get("name"))
        self.service = _text(raw.get("service"))
        self.resource = _text(raw.get("resource"))
        self.type = _text(raw.get("type"))
        meta, metrics = raw.get("meta"), raw.get("metrics")
        self.meta: Dict[str, str] = {k: v for k, v in meta.items() if type(v) is str} if type(meta) is dict else {}
        self.metrics: Dict[str, Any] = (
            {k: v for k, v in metrics.items() if type(v) in (int, float)} if type(metrics) is dict else {})
        self.trace_id = self.trace_low  # the 128-bit id once the trace's _dd.p.tid is known
        self.sampled = True
        self.line = line


def _id(value: Any, zero: bool = False) -> int:
    """A log-mode id (16 hex digits, as ddtrace's log writer prints it) or an agent-style int."""
    if type(value) is str and 0 < len(value) <= 16 and value.isascii():
        try:
            number = int(value, 16)
        except ValueError:
            number = -1
    elif type(value) is int:
        number = value
    else:
        number = -1
    if not (0 if zero else 1) <= number <= ids.MAX_UINT64:
        raise ValueError("bad id")
    return number


def _int(value: Any) -> int:
    if type(value) is int:
        return value
    if type(value) is float and value == value and abs(value) < 1e19:
        return int(value)
    return 0


def _text(value: Any) -> str:
    return value[:5000] if type(value) is str else ""


class Found:
    """What the input held: spans, and why lines or spans were passed over."""

    def __init__(self) -> None:
        self.spans: List[Span] = []
        self.trace_lines = 0
        self.problems: List[str] = []
        self.bad_spans = 0

    def problem(self, text: str) -> None:
        if len(self.problems) < 20:  # a file of broken lines says so without a flood
            self.problems.append(text)
        elif len(self.problems) == 20:
            self.problems.append("(further problems not listed)")


def _traces_object(text: str, depth: int = 0) -> Tuple[Optional[Any], Optional[str]]:
    """``(the traces list, None)``, or ``(None, why)`` / ``(None, None)`` for a line without one."""
    at = text.find(MARKER)
    if at < 0:
        at = text.find('{ "traces"')
    if at >= 0:
        try:
            value, _ = _DECODER.raw_decode(text, at)
        except RecursionError:
            return None, "nested too deeply"
        except ValueError:
            return None, "truncated or malformed"
        if type(value) is dict and type(value.get("traces")) is list:
            return value["traces"], None
        return None, "no traces list"
    # A JSON-format log record ({"timestamp": ..., "message": "..."}), maybe after a prefix.
    brace = text.find("{")
    if brace < 0 or depth > 1 or '\\"traces\\"' not in text and '"traces"' not in text:
        return None, None
    try:
        record, _ = _DECODER.raw_decode(text, brace)
    except (ValueError, RecursionError):
        return None, "truncated or malformed log record" if '\\"traces\\"' in text else None
    message = record.get("message") if type(record) is dict else None
    if type(message) is dict and type(message.get("traces")) is list:
        return message["traces"], None
    if type(message) is str:
        return _traces_object(message, depth + 1)
    return None, None


def _salvage(text: str) -> List[Any]:
    """The complete span objects at the start of a cut ``{"traces": [[{...}, {...}, {...`` line."""
    at = text.find("[", text.find(MARKER) + len(MARKER))
    out: List[Any] = []
    position = at
    while 0 <= position < len(text):
        char = text[position]
        if char in "[], \t":
            position += 1
            continue
        if char != "{":
            break
        try:
            value, position = _DECODER.raw_decode(text, position)
        except (ValueError, RecursionError):
            break
        out.append(value)
    return out


def read_spans(text: str) -> Found:
    """Every span of every trace line in ``text``; lines of other output are passed over."""
    found = Found()
    # only "\n" ends a line: the exporter keeps U+2028, U+0085... raw inside its JSON strings
    for number, line in enumerate(text.split("\n"), 1):
        if '"traces"' not in line and '\\"traces\\"' not in line:
            continue
        traces, why = _traces_object(line)
        raw_spans: List[Any] = []
        if traces is not None:
            found.trace_lines += 1
            for chunk in traces:
                if type(chunk) is list:
                    raw_spans.extend(chunk)
                else:
                    found.bad_spans += 1
        elif why is not None:
            raw_spans = _salvage(line) if line.find(MARKER) >= 0 else []
            found.problem("line %d: %s%s" % (number, why, ", %d complete span(s) kept" % len(raw_spans)
                                             if raw_spans else ""))
        for raw in raw_spans:
            try:
                if type(raw) is not dict:
                    raise ValueError
                found.spans.append(Span(raw, number))
            except ValueError:
                found.bad_spans += 1
    if found.bad_spans:
        found.problem("%d span(s) without valid ids skipped" % found.bad_spans)
    return found


# ------------------------------------------------------------------ the model


def _links(span: Span) -> List[Dict[str, Any]]:
    text = span.meta.get("_dd.span_links")
    if not text:
        return []
    try:
        items = json.loads(text)
    except (ValueError, RecursionError):
        return []
    out = []
    for item in items if type(items) is list else []:
        if type(item) is not dict:
            continue
        trace_hex, span_hex = item.get("trace_id"), item.get("span_id")
        try:
            trace_id = int(trace_hex, 16) if type(trace_hex) is str and len(trace_hex) in (16, 32) else 0
            span_id = int(span_hex, 16) if type(span_hex) is str and len(span_hex) == 16 else 0
        except ValueError:
            continue
        if trace_id and span_id:
            attributes = item.get("attributes")
            out.append(dict(_trace_forms(trace_id), span=_span_forms(span_id),
                            attributes={str(k): str(v) for k, v in attributes.items()}
                            if type(attributes) is dict else {}))
    return out


def _trace_forms(trace_id: int) -> Dict[str, Any]:
    return {"trace_id": "%032x" % trace_id, "datadog_trace_id": str(ids.dd_trace_id(trace_id)),
            "datadog_tid": ids.format_tid(trace_id), "xray_trace_id": ids.format_xray_trace_id(trace_id)}


def _span_forms(span_id: int) -> Dict[str, str]:
    return {"span_id": "%016x" % span_id, "datadog_span_id": str(span_id)}


def build_traces(spans: List[Span]) -> List[Dict[str, Any]]:
    """The spans grouped by trace, each trace's spans in tree order (parents before children)."""
    groups: Dict[int, List[Span]] = {}
    for span in spans:
        groups.setdefault(span.trace_low, []).append(span)
    traces = []
    for members in groups.values():
        high = 0
        priority: Optional[float] = None
        for span in members:  # _dd.p.tid rides on the first span of each chunk
            tid = ids.parse_tid(span.meta.get("_dd.p.tid"))
            high = high or tid or 0
            if priority is None and "_sampling_priority_v1" in span.metrics:
                priority = span.metrics["_sampling_priority_v1"]
        for span in members:
            span.trace_id = ids.trace_id_from_dd(span.trace_low, high)
            span.sampled = priority is None or priority > 0
        traces.append(_tree(members))
    traces.sort(key=lambda t: t["start"])
    return traces


def _tree(members: List[Span]) -> Dict[str, Any]:
    by_id: Dict[int, int] = {}
    for index, span in enumerate(members):
        by_id.setdefault(span.span_id, index)
    children: Dict[int, List[int]] = {}
    roots: List[int] = []
    for index, span in enumerate(members):
        parent = by_id.get(span.parent_id) if span.parent_id else None
        if parent is None or parent == index:
            roots.append(index)
        else:
            children.setdefault(parent, []).append(index)
    for kids in children.values():
        kids.sort(key=lambda i: members[i].start)
    roots.sort(key=lambda i: members[i].start)
    order: List[Tuple[int, int]] = []
    seen: Set[int] = set()
    pending = list(roots)
    while len(seen) < len(members):
        stack = [(i, 0) for i in reversed(pending)]
        while stack:  # iterative: a hostile file may nest spans 100,000 deep
            index, depth = stack.pop()
            if index in seen:
                continue
            seen.add(index)
            order.append((index, depth))
            stack.extend((child, depth + 1) for child in reversed(children.get(index, ())))
        # spans in a parent cycle have no root: start from the earliest one left
        pending = [min((i for i in range(len(members)) if i not in seen), key=lambda i: members[i].start)] \
            if len(seen) < len(members) else []
    start = min(s.start for s in members)
    end = max(s.start + s.duration for s in members)
    trace_id = members[0].trace_id
    rows = []
    for index, depth in order:
        span = members[index]
        parent_known = span.parent_id in by_id and by_id[span.parent_id] != index
        rows.append({
            "depth": depth, "name": span.name, "service": span.service, "resource": span.resource,
            "type": span.type, "start_ns": span.start, "offset_ns": span.start - start, "duration_ns": span.duration,
            "error": span.error, "error_type": span.meta.get("error.type"),
            "error_message": span.meta.get("error.msg") or span.meta.get("error.message"),
            "parent_span_id": "%016x" % span.parent_id if span.parent_id else None,
            "parent_in_trace": parent_known,
            "xray": "Root=%s;Parent=%016x;Sampled=%d" % (ids.format_xray_trace_id(trace_id), span.span_id,
                                                           span.sampled),
            "traceparent": "00-%032x-%016x-%02x" % (trace_id, span.span_id, 1 if span.sampled else 0),
            "links": _links(span), "line": span.line,
            **_span_forms(span.span_id),
        })
    return dict(_trace_forms(trace_id), start=start, duration_ns=end - start, spans=rows)


# ------------------------------------------------------------------ drawing


def _ms(ns: int) -> str:
    ms = ns / 1e6
    return "%.3f ms" % ms if ms < 10 else "%.1f ms" % ms if ms < 10_000 else "%.1f s" % (ms / 1000)


def _bar(offset: int, duration: int, total: int) -> str:
    if total <= 0:
        return "|" + "=" * BAR_WIDTH + "|"
    left = min(BAR_WIDTH - 1, int(offset * BAR_WIDTH / total))
    width = max(1, min(BAR_WIDTH - left, round(duration * BAR_WIDTH / total)))
    return "|" + " " * left + "=" * width + " " * (BAR_WIDTH - left - width) + "|"


def render_lines(traces: List[Dict[str, Any]], show_ids: bool = True) -> Iterator[str]:
    """The text waterfall of each trace, line by line (not yet escaped)."""
    for number, trace in enumerate(traces):
        if number:
            yield ""
        yield "trace %s  (Datadog %s%s, X-Ray %s)" % (
            trace["trace_id"], trace["datadog_trace_id"],
            " _dd.p.tid=%s" % trace["datadog_tid"] if trace["datadog_tid"] else "", trace["xray_trace_id"])
        spans = trace["spans"]
        errors = sum(1 for s in spans if s["error"])
        yield "  %d span(s), %s%s" % (len(spans), _ms(trace["duration_ns"]),
                                       ", %d error(s)" % errors if errors else "")
        labels = []
        for span in spans:
            depth = span["depth"]
            indent = "  " * min(depth, MAX_INDENT) + ("(depth %d) " % depth if depth > MAX_INDENT else "")
            label = "%s%s %s" % (indent, "!" if span["error"] else "-", span["name"])
            if span["resource"] and span["resource"] != span["name"]:
                label += " " + span["resource"]
            labels.append(label)
        width = min(60, max(len(label) for label in labels))
        end = "+" + _ms(trace["duration_ns"])
        yield " " * (width + 14) + "+0" + end.rjust(BAR_WIDTH)
        for span, label in zip(spans, labels):
            pad = "  " + "  " * min(span["depth"], MAX_INDENT) + "    "
            yield "  %-*s %10s %s  %s" % (width, label[:width], _ms(span["duration_ns"]),
                                          _bar(span["offset_ns"], span["duration_ns"], trace["duration_ns"]),
                                          span["service"])
            if span["error"]:
                kind, message = span["error_type"] or "", span["error_message"] or ""
                if kind and message.startswith(kind):  # error.msg often starts with the type already
                    kind = ""
                yield "%sERROR %s" % (pad, ": ".join(part for part in (kind, message) if part) or "(no message)")
            if span["parent_span_id"] and not span["parent_in_trace"]:
                yield "%sparent %s (Datadog %s) is not in this log" % (
                    pad, span["parent_span_id"], int(span["parent_span_id"], 16))
            if show_ids:
                yield "%sdatadog     trace_id=%s span_id=%s" % (pad, trace["datadog_trace_id"], span["datadog_span_id"])
                yield "%sx-ray       %s" % (pad, span["xray"])
                yield "%straceparent %s" % (pad, span["traceparent"])
            for link in span["links"]:
                attributes = " ".join("%s=%s" % kv for kv in link["attributes"].items())
                yield "%slink        trace %s span %s (Datadog %s/%s, X-Ray %s)%s" % (
                    pad, link["trace_id"], link["span"]["span_id"], link["datadog_trace_id"],
                    link["span"]["datadog_span_id"], link["xray_trace_id"], " " + attributes if attributes else "")


def render(traces: List[Dict[str, Any]], out: TextIO, show_ids: bool = True) -> None:
    """Write the waterfalls to ``out``, every line with its control characters escaped."""
    for line in render_lines(traces, show_ids):
        out.write(escape(line) + "\n")


def render_text(text: str, out: TextIO, show_ids: bool = True) -> int:
    """Read log-mode ``text`` and draw its traces (the demo's entry point); returns the trace count."""
    traces = build_traces(read_spans(text).spans)
    render(traces, out, show_ids)
    return len(traces)


# ------------------------------------------------------------------ the command


def run(args: argparse.Namespace) -> int:
    safe_streams()
    try:
        data = read_input(args.file)
    except InputError as exc:
        return fail(PREFIX, args.file, str(exc))
    try:
        found = read_spans(data.decode("utf-8", errors="replace"))
        traces = build_traces(found.spans)
    except RecursionError:
        return fail(PREFIX, args.file, "nested too deeply")
    except Exception as exc:  # a bug of ours on odd input: still one line, still exit code 2
        return fail(PREFIX, args.file, "%s: %s" % (type(exc).__name__, str(exc)[:200]))
    if not traces:
        reason = "no log-mode trace lines ({\"traces\": ...}) found"
        if found.problems:
            reason += ": " + found.problems[0]
        return fail(PREFIX, args.file, reason)
    if args.json:
        # ensure_ascii writes everything outside printable ASCII as \uNNNN
        print(json.dumps({"traces": traces, "problems": found.problems}, indent=2))
    else:
        render(traces, sys.stdout, show_ids=not args.no_ids)
    for problem in found.problems:  # what was passed over, after what could be shown
        print(PREFIX + "warning: " + escape(problem), file=sys.stderr)
    return 0
