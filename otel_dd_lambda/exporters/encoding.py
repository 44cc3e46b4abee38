"""Encoders for the Datadog Agent trace API: msgpack v0.4 (default), v0.5, and the log-mode JSON.

Every encoder cuts the chunks into payloads no larger than a byte budget: a v0.4 body is a msgpack
array of chunks, so each chunk is packed once and payloads are assembled from the packed pieces
under one array header (no re-encoding). A chunk too big on its own is split into smaller chunks
of the same trace (the agent accepts a trace in several chunks); a single span over the budget is
cut until it fits (``shrink.shrink_span``: never lost for its tags), and dropped (counted, with a
warning) only when even its skeleton cannot fit.
"""

from __future__ import annotations

import json
import struct
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from otel_dd_lambda.exporters.mapping import Chunk, LimitLog, fix_big_ints, links_json
from otel_dd_lambda.limits import utf8_len

_TID = "_dd.p.tid"


def _packb(obj: Any) -> bytes:
    """``msgpack.packb``, imported on first use (log mode never loads msgpack)."""
    return load_msgpack()(obj)


def load_msgpack() -> Any:
    """Import msgpack (agent mode calls this at init) and make ``_packb`` its ``packb``."""
    global _packb
    from msgpack import packb

    _packb = packb
    return packb


class Payload:
    """One request body. A slotted class, not a ``NamedTuple``: building a NamedTuple class costs
    ~0.7 M instructions at every cold start (its annotations compiled as forward references)."""

    __slots__ = ("body", "chunks", "span_count")

    def __init__(self, body: bytes, chunks: List[Chunk], span_count: int) -> None:
        self.body = body
        self.chunks = chunks  # what the body holds, to split or buffer again on failure
        self.span_count = span_count


def array_header(count: int) -> bytes:
    """The msgpack header of an array of ``count`` items."""
    if count < 16:
        return bytes((0x90 | count,))
    if count < 0x10000:
        return b"\xdc" + struct.pack(">H", count)
    return b"\xdd" + struct.pack(">I", count)


def split_chunk(chunk: Chunk) -> Tuple[Chunk, Chunk]:
    """Two halves of a chunk; the second half's first span gets the chunk's ``_dd.p.tid``."""
    middle = len(chunk) // 2
    first, second = chunk[:middle], chunk[middle:]
    tid = first[0]["meta"].get(_TID)
    if tid is not None:
        second[0]["meta"].setdefault(_TID, tid)
    return first, second


class V04Encoder:
    """``PUT /v0.4/traces``: an array of chunks, each an array of span maps."""

    path = "/v0.4/traces"
    content_type = "application/msgpack"
    supports_links = True

    def __init__(self, limits: Optional[LimitLog] = None) -> None:
        self.dropped_spans = 0  # spans too large to send on their own, even when cut
        self.limits = limits if limits is not None else LimitLog()

    def pack_chunk(self, chunk: Chunk) -> bytes:
        return _packb(chunk)

    def encode(self, chunks: Sequence[Chunk]) -> bytes:
        return _packb(list(chunks))

    def payloads(self, chunks: Sequence[Chunk], max_size: int) -> List[Payload]:
        """Cut ``chunks`` into bodies of at most ``max_size`` bytes."""
        chunks = [c for c in chunks if c]
        if not chunks:
            return []
        # the common case: everything fits in one body, packed in one call
        try:
            whole = _packb(chunks)
        except OverflowError:  # an int attribute beyond 64 bits: mapping leaves it to us
            fix_big_ints(chunks)
            whole = _packb(chunks)
        if len(whole) <= max_size:
            return [Payload(whole, chunks, sum(len(c) for c in chunks))]
        packb = self.pack_chunk
        pieces: List[Tuple[bytes, Chunk]] = []
        pending = list(chunks)
        pending.reverse()  # used as a stack, so order is kept
        budget = max_size - 5  # room for the array header
        while pending:
            chunk = pending.pop()
            if not chunk:
                continue
            packed = packb(chunk)
            if len(packed) <= budget:
                pieces.append((packed, chunk))
            elif len(chunk) > 1:
                first, second = split_chunk(chunk)
                pending.append(second)
                pending.append(first)
            else:
                from otel_dd_lambda.exporters.shrink import shrink_span  # loaded only for an oversize span

                shrunk = shrink_span(chunk[0], lambda s: len(packb([s])), budget)
                if shrunk is None:
                    self.dropped_spans += 1
                    self.limits.note("span_dropped")
                else:
                    self.limits.note("span_cut")
                    pieces.append((packb([shrunk]), [shrunk]))
        self.limits.report()
        out: List[Payload] = []
        parts: List[bytes] = []
        members: List[Chunk] = []
        size = 0
        spans = 0
        for packed, chunk in pieces:
            if parts and size + len(packed) > budget:
                out.append(Payload(array_header(len(parts)) + b"".join(parts), members, spans))
                parts, members, size, spans = [], [], 0, 0
            parts.append(packed)
            members.append(chunk)
            size += len(packed)
            spans += len(chunk)
        if parts:
            out.append(Payload(array_header(len(parts)) + b"".join(parts), members, spans))
        return out


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
            return _packb([list(table), traces])
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
