"""The encodings a function chooses by configuration, beside the default v0.4 (``encoding``):
``V05Encoder`` (the exporter's ``api_version="v0.5"``) and ``encode_log_lines`` (log mode,
``DD_FLUSH_TO_LOG``), with what only they use: ``fit_by_halving`` and ``links_json`` (v0.5 and log
lines have no field for span links).

Kept apart from ``encoding`` so that a function on the default encoding does not load this code;
the exporter imports it when it is configured to use one of these."""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from otel_dd_lambda.exporters.encoding import Payload, V04Encoder, load_msgpack, split_chunk
from otel_dd_lambda.exporters.mapping import _SAFE_VALUE_CHARS, Chunk, LimitLog, fix_big_ints
from otel_dd_lambda.limits import MAX_META_VALUE, utf8_len


def links_json(links: List[Dict[str, Any]]) -> str:
    """Span links as the ``_dd.span_links`` meta tag (for v0.5 and log mode, which lack the field)."""
    out = []
    for link in links:
        item: Dict[str, Any] = {
            "trace_id": "%016x%016x" % (link.get("trace_id_high", 0), link["trace_id"]),
            "span_id": "%016x" % link["span_id"],
        }
        for key in ("attributes", "tracestate", "flags"):
            if key in link:
                item[key] = link[key]
        out.append(item)
    text = json.dumps(out, separators=(",", ":"), ensure_ascii=False)
    # one tag: valid JSON within its limit, the first links kept (the parent's batch record first)
    while len(text) > _SAFE_VALUE_CHARS and utf8_len(text) > MAX_META_VALUE and out:
        out = out[: len(out) * 3 // 4] if len(out) > 1 else []
        text = json.dumps(out, separators=(",", ":"), ensure_ascii=False)
    return text


_V05_FIELDS = ("service", "name", "resource")


class V05Encoder(V04Encoder):
    """``PUT /v0.5/traces``: ``[string_table, traces]``, each span a 12-item array of indices.

    v0.5 has no field for span links or native events: links travel as the ``_dd.span_links``
    meta tag (JSON), events as the ``events`` meta tag.
    """

    path = "/v0.5/traces"
    supports_links = False

    def encode(self, chunks: Sequence[Chunk]) -> bytes:
        table: Dict[str, int] = {"": 0}  # the agent expects "" at index 0

        def index(value: Any) -> int:
            if type(value) is not str:
                value = "" if value is None else str(value)
            found = table.get(value)
            if found is None:
                found = table[value] = len(table)
            return found

        traces = []
        for chunk in chunks:
            trace = []
            for span in chunk:
                meta = span.get("meta") or {}
                links = span.get("span_links")
                if links:
                    meta = dict(meta)
                    meta["_dd.span_links"] = links_json(links)
                events = span.get("span_events")
                if events and "events" not in meta:
                    meta = dict(meta)
                    meta["events"] = json.dumps(events, separators=(",", ":"), default=str)
                trace.append(
                    [
                        index(span.get("service")),
                        index(span.get("name")),
                        index(span.get("resource")),
                        span["trace_id"],
                        span["span_id"],
                        span.get("parent_id") or 0,
                        span.get("start", 0),
                        span.get("duration", 0),
                        span.get("error", 0),
                        {index(k): index(v) for k, v in meta.items()},
                        {index(k): v for k, v in (span.get("metrics") or {}).items()},
                        index(span.get("type") or ""),
                    ]
                )
            traces.append(trace)
        try:
            return load_msgpack()([list(table), traces])  # msgpack is loaded once: this only looks it up
        except OverflowError:
            fix_big_ints(list(chunks))
            return self.encode(chunks)

    def payloads(self, chunks: Sequence[Chunk], max_size: int) -> List[Payload]:
        # The string table is shared by the whole body, so sizes do not add up: halve until fit.
        fitted, dropped = fit_by_halving([c for c in chunks if c], self.encode, max_size, limits=self.limits)
        self.dropped_spans += dropped
        return [Payload(body, group, sum(len(c) for c in group)) for body, group in fitted]


def _log_span(span: Dict[str, Any]) -> Dict[str, Any]:
    """A span as ddtrace's log writer prints it: ids as 16 upper-case hex digits."""
    out = dict(span)
    out["trace_id"] = "%016X" % span["trace_id"]
    out["span_id"] = "%016X" % span["span_id"]
    out["parent_id"] = "%016X" % (span.get("parent_id") or 0)
    links = out.pop("span_links", None)
    if links:
        meta = dict(out.get("meta") or {})
        meta["_dd.span_links"] = links_json(links)
        out["meta"] = meta
    return out


def encode_log_lines(chunks: Sequence[Chunk], max_line: int,
                     limits: Optional[LimitLog] = None) -> Tuple[List[str], int]:
    """Log mode: ``{"traces": [[span, ...], ...]}`` lines of at most ``max_line`` UTF-8 bytes.

    One line per flush when it fits; else several (CloudWatch Logs caps an event at 256 KiB, in
    bytes: the JSON keeps non-ASCII characters as they are). A span too large for a line on its
    own is cut to fit. Returns the lines and how many spans could not be printed even so.
    """
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode
    groups = [[_log_span(s) for s in c] for c in chunks if c]
    fitted, dropped = fit_by_halving(groups, lambda group: dumps({"traces": group}), max_line,
                                     size=utf8_len, limits=limits)
    return [line for line, _ in fitted], dropped


def fit_by_halving(chunks: List[Any], encode: Any, limit: int, size: Callable[[Any], int] = len,
                   limits: Optional[LimitLog] = None) -> Tuple[List[Tuple[Any, List[Any]]], int]:
    """Encode ``chunks`` in as few pieces as fit ``limit`` (``size`` of the encoding), in order.

    A piece too large is halved (a list of chunks by chunks, a lone chunk by spans); a lone span
    still too large is cut (``shrink_span``), and dropped and counted only when that is not
    enough. Returns ``[(encoded, chunks), ...]`` and that count.
    """
    out: List[Tuple[Any, List[Any]]] = []
    dropped = 0
    stack: List[List[Any]] = [chunks]
    while stack:
        group = stack.pop()
        if not group:
            continue
        encoded = encode(group)
        if size(encoded) <= limit:
            out.append((encoded, group))
        elif len(group) > 1:
            middle = len(group) // 2
            stack.append(group[middle:])
            stack.append(group[:middle])
        elif len(group[0]) > 1:
            first, second = split_chunk(group[0])
            stack.append([second])
            stack.append([first])
        else:
            from otel_dd_lambda.exporters.shrink import shrink_span  # loaded only for an oversize span

            shrunk = shrink_span(group[0][0], lambda s: size(encode([[s]])), limit)
            if shrunk is None:
                dropped += 1
                if limits is not None:
                    limits.note("span_dropped")
            else:
                if limits is not None:
                    limits.note("span_cut")
                out.append((encode([[shrunk]]), [[shrunk]]))
    if limits is not None:
        limits.report()
    return out, dropped
