"""The ``dd=`` member of W3C ``tracestate``, in the grammar ddtrace writes and reads.

``p:<16 hex last parent>;s:<priority>;o:<origin>;t.<k>:<v>;...`` where each ``t.<k>`` is the
propagated tag ``_dd.p.<k>``. In values, ``,`` ``;`` ``~`` and characters outside 0x20-0x7E
become ``_``, then ``=`` becomes ``~`` (tracestate values may not hold ``=``). The member is at
most 256 characters; tags that would overflow it are left out.

This is how the exact Datadog priority, origin and ``_dd.p.*`` tags survive a hop through OTel:
the OTel SDK copies a parent's ``trace_state`` to every child span.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, Optional, Tuple

from .. import ids

MEMBER_KEY = "dd"
MAX_MEMBER_CHARS = 256  # value + "dd=" as ddtrace counts it

_LOWER_HEX = frozenset("0123456789abcdef")
_VALUE_SPECIALS = ",;~"
_KEY_SPECIALS = ", ="


class DDState:
    """What a ``dd=`` member carries. ``tags`` keys are the Datadog names (``_dd.p.dm``).

    A plain slotted class rather than a ``NamedTuple``: building a NamedTuple class costs a
    fifth of a millisecond at import, on every cold start.
    """

    __slots__ = ("priority", "origin", "tags", "last_parent")

    def __init__(
        self,
        priority: Optional[int],
        origin: Optional[str],
        tags: Dict[str, str],
        last_parent: Optional[str],
    ) -> None:
        self.priority = priority
        self.origin = origin
        self.tags = tags
        self.last_parent = last_parent

    def _fields(self) -> Tuple[Optional[int], Optional[str], Dict[str, str], Optional[str]]:
        return (self.priority, self.origin, self.tags, self.last_parent)

    def __iter__(self) -> Iterator[Any]:  # unpacks like the tuple it replaces
        return iter(self._fields())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DDState) and self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # mutable tags: not hashable

    def __repr__(self) -> str:
        return "DDState(priority=%r, origin=%r, tags=%r, last_parent=%r)" % self._fields()


EMPTY = DDState(None, None, {}, None)


def _sanitize(text: str, specials: str) -> str:
    """Each of ``specials`` and each run of characters outside 0x20-0x7E become one ``_``."""
    if text.isascii() and text.isprintable():  # the usual case: only the specials to replace
        for char in specials:
            if char in text:
                text = text.replace(char, "_")
        return text
    out = []
    in_run = False
    for char in text:
        if " " <= char <= "~":
            out.append("_" if char in specials else char)
            in_run = False
        elif not in_run:
            out.append("_")
            in_run = True
    return "".join(out)


def _encode_value(value: str) -> str:
    return _sanitize(value, _VALUE_SPECIALS).replace("=", "~")


def _encode_key(key: str) -> str:
    return _sanitize(key, _KEY_SPECIALS)


def parse_dd_member(value: Optional[str]) -> Optional[DDState]:
    """Parse the value of a ``dd`` tracestate member (without ``dd=``); None when absent/garbled."""
    if not value or len(value) > MAX_MEMBER_CHARS:
        return None
    priority = origin = last_parent = None
    tags: Dict[str, str] = {}
    for item in value.split(";"):
        key, sep, val = item.partition(":")
        if not sep:
            continue
        if key == "s":
            parsed = ids.parse_priority(val)
            if parsed is not None:
                priority = parsed
        elif key == "o":
            origin = val.replace("~", "=")
        elif key == "p":
            if len(val) == 16 and _LOWER_HEX.issuperset(val):
                last_parent = val
        elif key[:2] == "t." and len(key) > 2:
            tags["_dd.p." + key[2:]] = val.replace("~", "=")
    return DDState(priority, origin, tags, last_parent)


def format_dd_member(
    priority: Optional[int],
    origin: Optional[str],
    tags: Optional[Dict[str, str]],
    last_parent: Optional[str] = None,
) -> str:
    """The value of a ``dd`` member (without ``dd=``), at most 256 characters with its key."""
    if not tags and not last_parent and priority is not None:  # what extraction usually formats
        return "s:%d;o:%s" % (priority, _encode_value(origin)) if origin else "s:%d" % priority
    parts = []
    if last_parent:
        parts.append("p:" + last_parent)
    if priority is not None:
        parts.append("s:%d" % priority)
    if origin:
        parts.append("o:" + _encode_value(origin))
    if not tags:
        return ";".join(parts)
    size = len("dd=") + len(";".join(parts))
    for key, val in tags.items():
        if key[:6] != "_dd.p." or len(key) == 6:
            continue
        item = "t.%s:%s" % (_encode_key(key[6:]), _encode_value(val))
        added = len(item) + (1 if parts else 0)
        if size + added > MAX_MEMBER_CHARS:
            continue  # ddtrace drops what does not fit; so do we
        parts.append(item)
        size += added
    return ";".join(parts)


def sampling_priority(sampled: bool, state: Optional[DDState]) -> int:
    """The Datadog priority for a context: the propagated one when it agrees with the flag.

    A sampled flag with a priority <= 0 (or an unsampled flag with one > 0) means something
    between the hops changed the decision; the flag wins, as 1 or 0.
    """
    if state is not None and state.priority is not None:
        if (state.priority > 0) == sampled:
            return state.priority
    return ids.priority_from_sampled(sampled)
