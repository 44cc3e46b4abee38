"""Hostile values and Lambda context objects: what a foreign runtime, a test double or an attacker
might hand the wrapper. Shared by the in-process hostile tests and the handler-redirect script that
runs them in a fresh interpreter."""

from __future__ import annotations

import base64
import zlib
from typing import Any, Callable, Dict, Tuple, Type

from hypothesis import strategies as st

from tests.support.wrapper import FakeContext


class Weird:
    """A value whose ``str`` and ``repr`` raise."""

    def __str__(self) -> str:
        raise RuntimeError("no str")

    __repr__ = __str__


CONTEXT_NAMES = ("aws_request_id", "invoked_function_arn", "function_name", "function_version", "client_context",
                 "memory_limit_in_mb", "identity", "log_group_name")
ERRORS = (RuntimeError, ValueError, TypeError, KeyError, AttributeError, RecursionError, ZeroDivisionError, OSError)


class RaisingInt:
    def __int__(self):
        raise ValueError("no int")

    __index__ = __int__


class StrSub(str):
    def __eq__(self, other):
        raise RuntimeError("no eq")

    __hash__ = str.__hash__

    def lower(self):
        raise RuntimeError("no lower")

    def split(self, *args):
        raise RuntimeError("no split")


def raiser(error: Type[BaseException]) -> Callable[..., Any]:
    """A method (or property getter) that raises ``error``."""

    def get(self: Any, *args: Any) -> Any:
        raise error("hostile")
    return get


hostile_values = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=200),
    st.binary(max_size=40), st.lists(st.integers(), max_size=3), st.just(Weird()), st.just(RaisingInt()),
    st.text(max_size=40).map(StrSub), st.just("arn:aws:lambda"), st.just("9" * 5000),
    st.dictionaries(st.sampled_from(["custom", "x-datadog-trace-id", "traceparent", "_datadog"]),
                    st.one_of(st.text(max_size=40), st.just(Weird()), st.integers()), max_size=3),
)


@st.composite
def hostile_contexts(draw):
    """Context objects as a foreign runtime, a test double or an attacker might build them: each
    attribute absent, a hostile value, a property that raises, or a method returning/raising."""
    shape = draw(st.sampled_from(["object", "object", "object", "getattr-raises", "value"]))
    if shape == "value":
        return draw(hostile_values)
    attrs = {}
    for name in CONTEXT_NAMES + ("get_remaining_time_in_millis",):
        how = draw(st.sampled_from(["absent", "value", "property-raises", "method", "method-raises"]))
        if how == "value":
            attrs[name] = draw(hostile_values)
        elif how == "property-raises":
            attrs[name] = property(raiser(draw(st.sampled_from(ERRORS))))
        elif how == "method":
            attrs[name] = (lambda v: lambda self: v)(draw(hostile_values))
        elif how == "method-raises":
            attrs[name] = raiser(draw(st.sampled_from(ERRORS)))
    if shape == "getattr-raises":
        attrs["__getattr__"] = raiser(draw(st.sampled_from(ERRORS)))
    return type("HostileContext", (), attrs)()


class AllRaise:
    """Every attribute a Lambda context has, as a property that raises."""

    aws_request_id = property(raiser(RuntimeError))
    invoked_function_arn = property(raiser(RuntimeError))
    function_name = property(raiser(RuntimeError))
    client_context = property(raiser(RuntimeError))
    get_remaining_time_in_millis = property(raiser(RuntimeError))


class RemainingRaises(FakeContext):
    def get_remaining_time_in_millis(self):
        raise RuntimeError("no time")


def with_arn(value: Any) -> FakeContext:
    """A context whose ``invoked_function_arn`` is ``value``."""
    context = FakeContext()
    context.invoked_function_arn = value
    return context


def with_remaining(value: Any) -> FakeContext:
    """A context whose ``get_remaining_time_in_millis()`` returns ``value``."""
    context = FakeContext()
    context.get_remaining_time_in_millis = lambda: value
    return context


# one of each kind, by name (the parametrized tests and the redirect script iterate over it)
NAMED_CONTEXTS: Dict[str, Any] = {
    "None": None, "object": object(), "int": 42, "str": "ctx", "dict": {"aws_request_id": "r"},
    "all-raise": AllRaise(), "remaining-raises": RemainingRaises(),
    "arn-int": with_arn(7), "arn-None": with_arn(None), "arn-short": with_arn("arn:aws:lambda"),
    "arn-strsub": with_arn(StrSub("arn:aws:lambda:us-east-1:1:function:f")),
    "remaining-nan": with_remaining(float("nan")), "remaining-inf": with_remaining(float("inf")),
    "remaining-huge": with_remaining(2**200), "remaining-str": with_remaining("12abc"),
    "remaining-None": with_remaining(None), "remaining-raising-int": with_remaining(RaisingInt()),
    "remaining-negative": with_remaining(-5),
    "getattr-raises": type("G", (), {"__getattr__": raiser(RuntimeError)})(),
}


def gzip_b64(*pieces: Tuple[bytes, int]) -> str:
    """base64(gzip(...)) of each ``(chunk, times)`` in turn, streamed: a bomb without the bomb."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    out = []
    for chunk, times in pieces:
        for _ in range(times):
            out.append(deflate.compress(chunk))
    out.append(deflate.flush())
    return base64.b64encode(b"".join(out)).decode()
