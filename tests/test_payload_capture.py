"""Payload capture: the same tags as datadog_lambda's ``tag_object`` on every sample event, except
where we redact more on purpose, and bounded, never-raising behaviour on odd values."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Dict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_dd_lambda.runtime.payload import MAX_TAGS, MAX_VALUE_CHARS, REDACTED, REDACTED_KEYS, payload_tags
from tests.support.reference import reference_payload_tags
from tests.support.samples import SAMPLES

EVENTS = sorted(p for p in SAMPLES.rglob("*.json") if p.name != "manifest.json")

RESPONSES: list = [
    {"statusCode": 200, "body": json.dumps({"ok": True, "items": [1, 2.5, None, "x"]}),
     "headers": {"Content-Type": "application/json", "Authorization": "Bearer abc"}},
    None, [], {}, "plain text", '{"token": "123", "password": 42, "nested": {"Token": [1, 2]}}',
    123, 1.5, True, False, [[[[[[[[[[[["deep"]]]]]]]]]]]], {"a": {"b": {"c": {"d": "e"}}}},
    "x" * 6000, '"quoted json string"', "null", "true", "1e400",
]


def _redacted_by_us(key: str, ours: Dict[str, str]) -> bool:
    """``key`` or one of its ancestors is a sensitive key that we wrote as ``redacted``."""
    parts = key.split(".")
    for end in range(1, len(parts) + 1):
        if parts[end - 1].lower() in REDACTED_KEYS and ours.get(".".join(parts[:end])) == REDACTED:
            return True
    return False


def _differences(ours: Dict[str, str], reference: Dict[str, str]) -> Dict[str, Any]:
    """Keys where we differ, except the redactions datadog_lambda misses (values that became
    numbers, lists or objects under a sensitive key)."""
    out = {}
    for key in set(ours) | set(reference):
        if ours.get(key) == reference.get(key) or _redacted_by_us(key, ours):
            continue
        out[key] = (ours.get(key), reference.get(key))
    return out


@pytest.mark.parametrize("max_depth", [10, 3])
def test_sample_events_and_responses_match_datadog_lambda(max_depth: int) -> None:
    payloads = [("function.request", json.loads(p.read_text())) for p in EVENTS]
    payloads += [("function.response", r) for r in RESPONSES]
    reference = reference_payload_tags(payloads, max_depth)
    mismatches = {}
    for (prefix, payload), theirs, name in zip(payloads, reference, [p.name for p in EVENTS] + list(range(len(RESPONSES)))):
        diff = _differences(payload_tags(prefix, payload, max_depth), theirs)
        if diff:
            mismatches[name] = diff
    assert not mismatches
    assert len(payloads) > 60  # every sample took part


def test_sensitive_values_are_redacted_even_when_they_parse_as_numbers() -> None:
    tags = payload_tags("function.request", {"body": '{"token": "123", "user": {"Password": 7}}',
                                             "headers": {"authorization": ["a", "b"]}})
    assert tags["function.request.body.token"] == REDACTED
    assert tags["function.request.body.user.Password"] == REDACTED
    assert tags["function.request.headers.authorization"] == REDACTED  # a list under the key: whole
    assert not any(key.startswith("function.request.headers.authorization.") for key in tags)
    # datadog_lambda writes the first two in clear
    theirs = reference_payload_tags([("function.request", {"body": '{"token": "123", "user": {"Password": 7}}'})])[0]
    assert theirs["function.request.body.token"] == "123"


class _Hostile:
    def items(self) -> Any:
        raise RuntimeError("items")

    def __str__(self) -> str:
        raise RuntimeError("str")


def test_odd_values_never_raise() -> None:
    cyclic: dict = {"name": "loop"}
    cyclic["self"] = cyclic
    twice: list = []
    twice.extend([twice, twice])  # 2**depth paths without a tag budget
    tags = payload_tags("function.response", {
        "bytes": b"\xff\xfe not json", "json_bytes": b'{"a": 1}', "cycle": cyclic, "twice": twice,
        "hostile": _Hostile(), "decimal": Decimal("1.10"), "huge": "y" * 100_000,
        "tuple": (1, 2), "set": {3}, "deep": json.dumps([[[[[[[[[[[[1]]]]]]]]]]]])})
    assert tags["function.response.bytes"] == repr(b"\xff\xfe not json")
    assert tags["function.response.json_bytes.a"] == "1"
    assert tags["function.response.hostile"] == "UNKNOWN"
    assert tags["function.response.decimal"] == "1.10"
    assert len(tags["function.response.huge"]) == MAX_VALUE_CHARS
    assert tags["function.response.tuple"] == "(1, 2)"  # as datadog_lambda writes a non-list sequence
    assert any(key.startswith("function.response.cycle.self.self") for key in tags)
    assert len(tags) <= MAX_TAGS


def test_a_huge_payload_is_capped_in_tags() -> None:
    tags = payload_tags("function.request", {"records": [{"id": i, "body": "b"} for i in range(50_000)]})
    assert len(tags) == MAX_TAGS


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
)


@settings(max_examples=150, deadline=None)
@given(json_values)
def test_any_json_value_gives_string_tags_within_limits(value: Any) -> None:
    tags = payload_tags("function.request", value)
    assert all(type(v) is str and len(v) <= MAX_VALUE_CHARS for v in tags.values())
    assert all(k == "function.request" or k.startswith("function.request.") for k in tags)
