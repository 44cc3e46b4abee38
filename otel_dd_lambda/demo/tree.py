"""Print finished spans as trace trees, with each span's Datadog, X-Ray and W3C identity."""

from __future__ import annotations

from typing import Any, Dict, List, Sequence, TextIO

from otel_dd_lambda import ids


def span_ids(span: Any) -> Dict[str, str]:
    """Every ecosystem's name for one span."""
    ctx = span.context
    flags = "01" if ctx.trace_flags.sampled else "00"
    return {
        "dd_trace_id": str(ids.dd_trace_id(ctx.trace_id)),
        "dd_span_id": str(ctx.span_id),
        "xray": "Root=%s;Parent=%016x;Sampled=%s" % (ids.format_xray_trace_id(ctx.trace_id), ctx.span_id, flags[1]),
        "traceparent": "00-%032x-%016x-%s" % (ctx.trace_id, ctx.span_id, flags),
    }


def describe(spans: Sequence[Any]) -> List[Dict[str, Any]]:
    """Plain dicts for the spans: name, ids, parent, kind, invocation flag."""
    out = []
    for span in spans:
        item = {"name": span.name, "kind": span.kind.name.lower(), "span_id": span.context.span_id,
                "trace_id": "%032x" % span.context.trace_id,
                "parent_id": span.parent.span_id if span.parent is not None else None,
                "invocation": "faas.invocation_id" in (span.attributes or {}),
                "service": (span.attributes or {}).get("service.name") or span.resource.attributes.get("service.name")}
        item.update(span_ids(span))
        out.append(item)
    return out


def print_trees(spans: Sequence[Any], out: TextIO) -> None:
    items = describe(spans)
    by_trace: Dict[str, List[Dict[str, Any]]] = {}
    for item in items:
        by_trace.setdefault(item["trace_id"], []).append(item)
    for trace_id, members in by_trace.items():
        known = {m["span_id"] for m in members}
        children: Dict[Any, List[Dict[str, Any]]] = {}
        for m in members:
            parent = m["parent_id"] if m["parent_id"] in known else None
            children.setdefault(parent, []).append(m)
        first = members[0]
        out.write("trace %s  (Datadog %s, X-Ray %s)\n" % (trace_id, first["dd_trace_id"],
                                                           ids.format_xray_trace_id(int(trace_id, 16))))

        def walk(parent: Any, depth: int) -> None:
            for m in children.get(parent, []):
                out.write("%s%s %s [%s] service=%s\n" % ("  " * (depth + 1), "*" if m["invocation"] else "-",
                                                         m["name"], m["kind"], m["service"]))
                pad = "  " * (depth + 2)
                out.write("%sdatadog     trace_id=%s span_id=%s\n" % (pad, m["dd_trace_id"], m["dd_span_id"]))
                out.write("%sx-ray       %s\n" % (pad, m["xray"]))
                out.write("%straceparent %s\n" % (pad, m["traceparent"]))
                walk(m["span_id"], depth + 1)

        walk(None, 0)
