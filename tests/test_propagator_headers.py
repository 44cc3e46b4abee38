"""The one-pass header readers (``trace_headers``, the dict ``reader``) against the plain rule
they speed up: an exact lowercase key, else a lowered copy of the carrier (the last spelling
wins), a value as ``_first_str`` makes it. Keys in every case, unicode, newlines, non-str keys."""

from __future__ import annotations

from typing import Any, Dict, Optional

from hypothesis import given, settings
from hypothesis import strategies as st

from otel_dd_lambda.propagators.headers import _first_str, reader, trace_headers

NAMES = ("x-datadog-trace-id", "x-datadog-parent-id", "x-datadog-sampling-priority", "x-datadog-origin",
         "x-datadog-tags", "traceparent", "tracestate", "x-amzn-trace-id")


def _respell(name: str, flips: Any) -> str:
    return "".join(c.upper() if flip else c for c, flip in zip(name, flips))


keys = st.one_of(
    st.sampled_from(NAMES),
    st.builds(_respell, st.sampled_from(NAMES), st.lists(st.booleans(), min_size=30, max_size=30)),
    st.sampled_from(["Host", "X-Forwarded-For", "İx", "ΑΣ", "a\nx-datadog-origin", "x-datadog-origin\nB", ""]),
    st.text(max_size=12),
    st.integers(),
)
values = st.one_of(st.text(max_size=20), st.none(), st.integers(), st.lists(st.text(max_size=5), max_size=2),
                   st.binary(max_size=8), st.just("9" * 9000))


def expected(carrier: Dict[Any, Any], name: str) -> Optional[str]:
    value = carrier.get(name)
    if value is None:
        lowered = {str.lower(k): v for k, v in carrier.items() if isinstance(k, str)}
        value = lowered.get(name)
    return _first_str(value)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(keys, values, max_size=10))
def test_readers_agree_with_the_plain_rule(carrier: Dict[Any, Any]) -> None:
    headers = trace_headers(carrier, NAMES)
    read = reader(carrier)
    for name in NAMES:
        want = expected(carrier, name)
        assert read(name) == want, name
        assert headers.get(name) == want, name
        assert (name in headers) == (want is not None), name


def test_lowercase_headers_are_read_in_place() -> None:
    carrier = {"x-datadog-trace-id": "1", "Host": "h", "traceparent": "t"}
    assert trace_headers(carrier, NAMES) is carrier  # no copy when nothing needs converting
    carrier["X-Amzn-Trace-Id"] = "Root=1-..."  # a name in another case: a copy with it
    assert trace_headers(carrier, NAMES)["x-amzn-trace-id"] == "Root=1-..."


_FILLER = {"Host": "h", "Accept": "*/*", "User-Agent": "curl", "Via": "1.1 cf", "X-Forwarded-For": "1.2.3.4",
           "X-Forwarded-Port": "443", "X-Forwarded-Proto": "https", "CloudFront-Viewer-Country": "US",
           "Accept-Encoding": "gzip", "Accept-Language": "en", "Cache-Control": "no-cache", "X-Amz-Cf-Id": "id",
           "Upgrade-Insecure-Requests": "1", "CloudFront-Is-Mobile-Viewer": "false", "Cookie": "c" * 9000,
           "CloudFront-Forwarded-Proto": "https", "CloudFront-Is-Tablet-Viewer": "false"}


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, values, max_size=10), st.integers(0, len(_FILLER)), st.booleans())
def test_readers_agree_with_the_plain_rule_on_http_sized_carriers(
    trace: Dict[Any, Any], fillers: int, cookie: bool
) -> None:
    # API Gateway's dozens of headers: trace_headers then checks only the trace names' values.
    filler = {k: v for k, v in list(_FILLER.items())[:fillers] if cookie or k != "Cookie"}
    carrier = {**filler, **trace}
    headers = trace_headers(carrier, NAMES)
    read = reader(carrier)
    for name in NAMES:
        want = expected(carrier, name)
        assert read(name) == want, name
        assert headers.get(name) == want, name
        assert (name in headers) == (want is not None), name


def _http_carrier(**trace: str) -> Dict[str, Any]:
    return {**{k: v for k, v in _FILLER.items() if k != "Cookie"}, **trace}


def test_a_header_layout_is_analysed_once_and_reused_with_other_values(monkeypatch: Any) -> None:
    from otel_dd_lambda.propagators import headers

    monkeypatch.setattr(headers, "_LAYOUTS", {})
    calls = []
    analyse = headers._layout_of
    monkeypatch.setattr(headers, "_layout_of", lambda *a: calls.append(1) or analyse(*a))
    for value in ("1", "2", "3"):  # same names, same order: one analysis
        carrier = _http_carrier(**{"X-Datadog-Trace-Id": value, "x-datadog-parent-id": "5"})
        headers_ = trace_headers(carrier, NAMES)
        assert headers_.get("x-datadog-trace-id") == value and headers_.get("x-datadog-parent-id") == "5"
    assert len(calls) == 1
    carrier = _http_carrier(**{"x-datadog-parent-id": "5", "X-Datadog-Trace-Id": "4"})  # another order
    assert trace_headers(carrier, NAMES).get("x-datadog-trace-id") == "4"
    assert len(calls) == 2


def test_layout_memory_is_bounded_and_skips_what_it_cannot_trust(monkeypatch: Any) -> None:
    from otel_dd_lambda.propagators import headers

    monkeypatch.setattr(headers, "_LAYOUTS", {})
    monkeypatch.setattr(headers, "MAX_LAYOUTS", 2)
    for i in range(5):
        carrier = _http_carrier(**{"X-Custom-%d" % i: "v", "traceparent": "t"})
        assert trace_headers(carrier, NAMES).get("traceparent") == "t"
        assert len(headers._LAYOUTS) <= 2  # cleared when full
    headers._LAYOUTS.clear()

    class Key(str):
        pass

    carrier = _http_carrier(**{"traceparent": "t"})
    carrier[Key("X-Datadog-Origin")] = "o"  # a str subclass: read, not remembered
    assert trace_headers(carrier, NAMES).get("x-datadog-origin") == "o"
    big = {"h%d" % i: "v" for i in range(headers.MAX_LAYOUT_KEYS + 1)}
    big["X-Datadog-Origin"] = "o"  # more names than a layout kept: read, not remembered
    assert trace_headers(big, NAMES).get("x-datadog-origin") == "o"
    assert headers._LAYOUTS == {}

    class HashedOnce(str):
        hashed = False

        def __hash__(self) -> int:
            if HashedOnce.hashed:
                raise TypeError("no second hash")
            HashedOnce.hashed = True
            return str.__hash__(self)

    carrier = _http_carrier(traceparent="t")
    carrier[HashedOnce("X")] = "x"  # the layout's tuple cannot be hashed: analysed, not remembered
    monkeypatch.setattr(headers, "_LAYOUTS", {})
    assert trace_headers(carrier, NAMES).get("traceparent") == "t"
