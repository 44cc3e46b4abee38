"""Reading one header value from any carrier, case-insensitively and defensively.

Carriers come from the internet (API Gateway), from other tracers and from user code: keys may be
in any case, values may be lists (``multiValueHeaders``, OTel getters), bytes, or garbage. A
reader returns a ``str`` or None, never raises, and refuses hostile sizes.
"""

from __future__ import annotations

import logging
from itertools import islice, repeat
from typing import TYPE_CHECKING, Any, Callable, Dict, FrozenSet, Iterable, Optional, Tuple

from opentelemetry.propagators.textmap import DefaultGetter, Getter, default_getter

logger = logging.getLogger("otel_dd_lambda.propagators")

MAX_HEADER_CHARS = 8192  # far above any valid trace header; protects the parsers
MAX_KEYS = 1024  # keys scanned for a case-insensitive match through a getter

if TYPE_CHECKING:  # annotations only: subscripting typing generics at import costs cold-start time
    HeaderReader = Callable[[str], Optional[str]]


def _first_str(value: Any) -> Optional[str]:
    """A header value as ``str``: the value, or the first of a list (multi-value headers)."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):  # one level only: a header is not a tree
        if not value:
            return None
        value = value[0]
    if type(value) is str:
        return value if len(value) <= MAX_HEADER_CHARS else None
    if isinstance(value, (bytes, bytearray)):
        if len(value) > MAX_HEADER_CHARS:
            return None
        try:
            return bytes(value).decode("ascii")
        except UnicodeDecodeError:
            logger.debug("header value is not ASCII: ignored")
            return None
    if isinstance(value, str):  # a str subclass: its plain value, without calling its methods
        value = str.__str__(value)
        return value if len(value) <= MAX_HEADER_CHARS else None
    return None


_PLAIN_STR = frozenset((str,))


def plain_str_within_cap(values: Any) -> bool:
    """Every value a plain ``str`` (a subclass may override the methods the parsers call) and all
    of them together within the cap; both checks loop in C."""
    return _PLAIN_STR.issuperset(map(type, values)) and len("".join(values)) <= MAX_HEADER_CHARS


def _lowered(carrier: dict) -> dict:
    if type(carrier) is dict:
        try:  # built in C: str.lower of each key, zipped with the values (the last spelling wins)
            return dict(zip(map(str.lower, carrier), carrier.values()))
        except Exception:  # a key that is not a str: filter below
            pass
    try:
        return {str.lower(k): v for k, v in carrier.items() if isinstance(k, str)}
    except Exception:  # a dict subclass with a hostile items()
        logger.debug("carrier could not be read as a mapping")
        return {}


def reader(carrier: Any, getter: Optional[Getter] = None) -> HeaderReader:
    """A function ``name -> str | None`` over ``carrier``; ``name`` must be lowercase.

    A plain dict read with OTel's default getter is looked up directly, and lowered once when a
    name is not found as written (an exact lowercase key wins over other spellings). Any other
    getter is asked for the name as given, then for every key it lists that matches without case.
    """
    if getter is None or type(getter) is DefaultGetter:
        if type(carrier) is dict:
            return _dict_reader(carrier)
        if isinstance(carrier, dict):  # a subclass: read its items once, defensively
            get = _lowered(carrier).get
            return lambda name: _first_str(get(name))
    if getter is None:
        if not hasattr(carrier, "get"):  # an int, None, a list: nothing to read
            logger.debug("carrier of type %s holds no headers", type(carrier).__name__)
            return _no_header
        getter = default_getter  # any other mapping (MappingProxyType, HTTPMessage, ...)
    return lambda name: _read_with_getter(carrier, getter, name)


def _dict_reader(carrier: dict) -> HeaderReader:
    # An exact (lowercase) key is looked up directly; ddtrace, OTel and HTTP/2 all write lowercase
    # names, so often nothing else is needed. A missing name: see _lowered_keys.
    exact = carrier.get
    index: Any = _NOT_YET
    lowered: Optional[dict] = None

    def read(name: str) -> Optional[str]:
        nonlocal index, lowered
        value = exact(name)
        if value is None:
            if lowered is None:
                if index is _NOT_YET:
                    index = _lowered_keys(carrier)
                if index is _ALL_LOWERCASE or (index is not None and not _spelled_otherwise((name,), carrier, index)):
                    return None
                lowered = _lowered(carrier)
            value = lowered.get(name)
        if type(value) is str and len(value) <= MAX_HEADER_CHARS:  # the common case, without a call
            return value
        return _first_str(value)

    return read


def trace_headers(
    carrier: dict, names: Tuple[str, ...], name_set: Optional[FrozenSet[str]] = None, only_names: bool = False
) -> Dict[str, Any]:
    """A dict whose ``get`` returns for each of ``names`` what ``reader(carrier)`` would.

    Usually the carrier itself: every value is a ``str``, all of them together within the size
    cap, and no name missing as written may be present in another case (checked with a few
    C-level calls, not a Python loop over the keys or values). Else a new dict of the names'
    values. Either way the extractors read with ``dict.get`` (a C call), and test a style's key
    header with ``in``. ``name_set``: ``frozenset(names)``, precomputed by a caller;
    ``only_names``: the caller has seen that every key is one of ``names`` or a lowercase header
    that no style reads (``carrier.keys() <= name_set`` and such headers).
    """
    name_set = name_set or frozenset(names)
    # A ``_datadog`` object (SQS, SNS, ...) holds trace names only, as written: then no key can
    # be another spelling of a missing name, without joining and lowering the keys.
    if not only_names:
        try:
            only_names = carrier.keys() <= name_set
        except Exception:  # a hostile key's __eq__: the general path decides
            pass
    if only_names and plain_str_within_cap(carrier.values()):
        return carrier  # the usual _datadog object
    if only_names:
        index: Optional[str] = _ALL_LOWERCASE
    else:
        index, other_case = _layout(carrier, names, name_set)
    if index is None:
        other_case = True  # a key that is not a str: the lowered copy filters such keys
    elif index is _ALL_LOWERCASE:
        other_case = False
    else:
        if not other_case and len(carrier) > 2 * len(name_set):
            # An HTTP carrier (dozens of headers): only the values the extractors may read must
            # be str within the cap, not every header's; a missing name counts as "".
            if plain_str_within_cap(list(map(carrier.get, names, _BLANKS))):
                return carrier
            other_case = _spelled_otherwise(names, carrier, index)
    if not other_case:
        if plain_str_within_cap(carrier.values()):
            return carrier
        if index is not None and index is not _ALL_LOWERCASE:
            other_case = _spelled_otherwise(names, carrier, index)
    return _copy_of_names(carrier, names, other_case)


def _layout_of(carrier: dict, name_set: FrozenSet[str]) -> Tuple[Optional[str], bool]:
    """``(_lowered_keys(carrier), whether a name absent as written is another key's spelling)``:
    facts of the keys alone."""
    index = _lowered_keys(carrier)
    if index is None or index is _ALL_LOWERCASE:
        return index, index is None
    # Only the names absent as written are looked up in the index: a set difference with the
    # dict, in C (API Gateway REST keeps the client's casing: every request). A name present
    # with a None value is not in that difference, but its carrier fails the check of values in
    # trace_headers, and other_case is then decided name by name.
    missing = name_set.difference(carrier)
    # Usually no missing name is even a substring of the keys: known with C calls only.
    return index, any(map(index.__contains__, missing)) and _spelled_otherwise(missing, carrier, index)


# The facts of header layouts met before: an HTTP trigger's requests mostly repeat the same
# header names in the same order (one API, the same clients), and a tuple of the names, whose
# hashes the event's dict already holds, is looked up for a fraction of the cost of lowering
# and scanning them (about a tenth of an API Gateway extraction). Bounded: at most MAX_LAYOUTS
# layouts (cleared when full) of at most MAX_LAYOUT_KEYS names each.
_LAYOUTS: Dict[Tuple[Any, ...], Tuple[Optional[str], bool]] = {}
MAX_LAYOUTS = 64
MAX_LAYOUT_KEYS = 128


def _layout(carrier: dict, names: Tuple[str, ...], name_set: FrozenSet[str]) -> Tuple[Optional[str], bool]:
    """``_layout_of(carrier, name_set)``, remembered per key layout (and read set)."""
    if len(carrier) > MAX_LAYOUT_KEYS:
        return _layout_of(carrier, name_set)
    try:
        key = (names, *carrier)
        known = _LAYOUTS.get(key)
    except Exception:  # a key whose hash or comparison fails: computed, not remembered
        return _layout_of(carrier, name_set)
    if known is None:
        known = _layout_of(carrier, name_set)
        # Only layouts of plain str keys are kept (a subclass could compare equal to anything).
        if known[0] is not None and _PLAIN_STR.issuperset(map(type, carrier)):
            if len(_LAYOUTS) >= MAX_LAYOUTS:
                _LAYOUTS.clear()
            _LAYOUTS[key] = known
    return known


def _copy_of_names(carrier: dict, names: Tuple[str, ...], other_case: bool) -> Dict[str, Any]:
    """``names``' values in ``carrier`` as ``str`` (in another case too when ``other_case``)."""
    get = carrier.get
    lowered = _lowered(carrier) if other_case else None
    found: Dict[str, Any] = {}
    for name in names:
        value = get(name)
        if value is None and lowered is not None:
            value = lowered.get(name)
        if value is None:
            continue
        if type(value) is not str or len(value) > MAX_HEADER_CHARS:
            value = _first_str(value)
        if value is not None:
            found[name] = value
    return found


_NOT_YET = object()
_BLANKS = repeat("")  # map()'s second argument: carrier.get(name, "")
_ALL_LOWERCASE = "\n"


def _lowered_keys(carrier: dict) -> Optional[str]:
    """Every key of ``carrier`` lowered and joined with newlines, for ``_spelled_otherwise``.

    ``_ALL_LOWERCASE`` when lowering changes no key (the exact lookups said it all); None when a
    key is not a ``str`` (lower the carrier, which filters such keys). Lowering two dozen keys
    into a new dict (API Gateway REST keeps the client's casing) costs more than the rest of an
    extraction; this is one join and one lower.
    """
    try:
        keys = "\n".join(carrier)
    except Exception:
        return None
    lowered = keys.lower()
    return _ALL_LOWERCASE if lowered == keys else lowered


def _spelled_otherwise(names: Iterable[str], carrier: dict, lowered_keys: str) -> bool:
    """Whether a name missing (or None) in ``carrier`` as written may be another key's spelling.

    ``lowered_keys``: ``_lowered_keys(carrier)``. A name that is not even a substring of it is
    spelled no other way; one that is, is looked up between newlines. A hit, even a spurious one
    across a newline inside a key, only means a lowered copy.
    """
    index = None
    for name in names:
        if name in lowered_keys and carrier.get(name) is None:
            if index is None:
                index = "\n%s\n" % lowered_keys
            if "\n%s\n" % name in index:
                return True
    return False


def _no_header(name: str) -> None:
    return None


def _read_with_getter(carrier: Any, getter: Getter, name: str) -> Optional[str]:
    try:
        value = getter.get(carrier, name)
        if value is None:
            for key in islice(getter.keys(carrier), MAX_KEYS):
                if isinstance(key, str) and str.lower(key) == name:
                    value = getter.get(carrier, key)
                    break
        return _first_str(value)
    except Exception as exc:  # a user getter or carrier that misbehaves is "no header"
        # the user's code failed, not ours: no traceback, which the test guard reserves for our bugs
        logger.debug("getter failed reading %s: %r", name, exc)
        return None


def write_headers(carrier: Any, context: Any, setter: Any, inject_headers: Callable[..., None], style: str) -> None:
    """One style's ``TextMapPropagator.inject``: the current span's headers through ``setter``.

    Nothing is written without a valid span; a failing setter or carrier is logged, never raised.
    """
    from opentelemetry import trace  # already loaded by every caller; kept out of import time

    span_context = trace.get_current_span(context).get_span_context()
    if not span_context.is_valid:
        return
    try:
        inject_headers(span_context, lambda k, v: setter.set(carrier, k, v))
    except Exception as exc:  # the user's setter or carrier refused the header
        logger.debug("%s injection failed: %r", style, exc)
