"""The default encoder for the Datadog Agent trace API, msgpack v0.4, and what the other encodings
(v0.5 and the log-mode JSON, in ``optional_encodings``) share with it.

Every encoder cuts the chunks into payloads no larger than a byte budget: a v0.4 body is a msgpack
array of chunks, so each chunk is packed once and payloads are assembled from the packed pieces
under one array header (no re-encoding). A chunk too big on its own is split into smaller chunks
of the same trace (the agent accepts a trace in several chunks); a single span over the budget is
cut until it fits (``shrink.shrink_span``: never lost for its tags), and dropped (counted, with a
warning) only when even its skeleton cannot fit.
"""

from __future__ import annotations

import struct
from typing import Any, List, Optional, Sequence, Tuple

from otel_dd_lambda.exporters.mapping import Chunk, LimitLog, fix_big_ints

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
