"""The ``dd=`` member of W3C ``tracestate``, in the grammar ddtrace writes and reads.

``p:<16 hex last parent>;s:<priority>;o:<origin>;t.<k>:<v>;...`` where each ``t.<k>`` is the
propagated tag ``_dd.p.<k>``. In values, ``,`` ``;`` ``~`` and characters outside 0x20-0x7E
become ``_``, then ``=`` becomes ``~`` (tracestate values may not hold ``=``). The member is at
most 256 characters; tags that would overflow it are left out.

This is how the exact Datadog priority, origin and ``_dd.p.*`` tags survive a hop through OTel:
the OTel SDK copies a parent's ``trace_state`` to every child span.
"""

from __future__ import annotations

import re
from typing import Dict, NamedTuple, Optional

MEMBER_KEY = "dd"
MAX_MEMBER_CHARS = 256  # value + "dd=" as ddtrace counts it

_BAD_VALUE = re.compile(r"[,;~]|[^\x20-\x7E]+")
_BAD_KEY = re.compile(r"[, =]|[^\x20-\x7E]+")
_PRIORITY = re.compile(r"-?[0-9]{1,3}\Z")
_HEX16 = re.compile(r"[0-9a-f]{16}\Z")


class DDState(NamedTuple):
    """What a ``dd=`` member carries. ``tags`` keys are the Datadog names (``_dd.p.dm``)."""

    priority: Optional[int]
    origin: Optional[str]
    tags: Dict[str, str]
    last_parent: Optional[str]


EMPTY = DDState(None, None, {}, None)


def _encode_value(value: str) -> str:
    return _BAD_VALUE.sub("_", value).replace("=", "~")


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
            if _PRIORITY.match(val):
                priority = int(val)
        elif key == "o":
            origin = val.replace("~", "=")
        elif key == "p":
            if _HEX16.match(val):
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
    parts = []
    if last_parent:
        parts.append("p:" + last_parent)
    if priority is not None:
        parts.append("s:%d" % priority)
    if origin:
        parts.append("o:" + _encode_value(origin))
    size = len("dd=") + len(";".join(parts))
    if tags:
        for key, val in tags.items():
            if key[:6] != "_dd.p." or len(key) == 6:
                continue
            item = "t.%s:%s" % (_BAD_KEY.sub("_", key[6:]), _encode_value(val))
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
    return 1 if sampled else 0
