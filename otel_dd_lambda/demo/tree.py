"""The demo's spans as plain dicts with every id form (its ``--summary`` line).

The tree itself is drawn by ``otel-dd-lambda view``'s renderer from the exporter's log-mode lines.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

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
