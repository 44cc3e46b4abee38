"""The trigger table (``carriers.triggers``) is the one home of each trigger's rules: every trigger
``detect`` names has a row, the event time is computed once (and the inferred span starts at it),
and the settings cache follows the environment through ``config.env_fingerprint`` on both of its
paths (``os.environ``'s own dict, and any other mapping)."""

from __future__ import annotations

import json
import os
import time
from typing import Any, Dict, List

import pytest

from otel_dd_lambda import config, extract, extract_context
from otel_dd_lambda.carriers import detect, triggers
from otel_dd_lambda.runtime.inferred import inferred_span
from tests.support.samples import SAMPLES as SAMPLES_DIR

SAMPLES = sorted(p.relative_to(SAMPLES_DIR).as_posix() for p in SAMPLES_DIR.rglob("*.json")
                 if p.name != "manifest.json")
NAMES = [value for name, value in vars(detect).items() if name.isupper() and type(value) is str and name not in (
    "REST", "HTTP_API", "WEBSOCKET")]


def _load(name: str) -> Any:
    return json.loads((SAMPLES_DIR / name).read_text())


def test_every_trigger_and_subtype_has_one_row() -> None:
    keys = [row.subtype or row.name for row in triggers.all_rows()]
    assert len(keys) == len(set(keys))
    assert set(NAMES) == {row.name for row in triggers.all_rows()}
    for subtype in (detect.REST, detect.HTTP_API, detect.WEBSOCKET):
        assert triggers.row_of(subtype).name == detect.API_GATEWAY
    assert triggers.row_of(None) is triggers.UNKNOWN
    assert triggers.row_of(detect.SQS) is triggers.row_of(detect.SQS)  # a lazy row is built once
    with pytest.raises(KeyError):  # a name of no trigger is no row, lazy or not
        triggers.row_of("not-a-trigger")


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_events_have_a_row_and_tags_named_by_it(name: str) -> None:
    event = _load(name)
    trigger, subtype = detect.detect(event)
    row = triggers.row_of(subtype or trigger)
    assert (row.name or None) == trigger and row.subtype == subtype
    result = extract_context(event)
    assert (result.trigger, result.subtype) == (trigger, subtype)
    assert result.trigger_tags.get("function_trigger.event_source") == (trigger if row.tagged else None)


@pytest.mark.parametrize("name", SAMPLES)
def test_inferred_span_starts_at_the_extracted_event_time(name: str) -> None:
    result = extract_context(_load(name))
    start = result.event_time_ns
    if start is None:
        return
    span = inferred_span(result, start + 1_000_000)  # a millisecond after the event
    if span is not None:
        assert span.start_ns == start
    assert inferred_span(result, start + 16 * 24 * 3600 * 10**9) is None  # older than SQS keeps messages


@pytest.mark.parametrize(
    "value, unit, expected",
    [
        ("1700000000123", triggers.MS, 1700000000123 * 10**6),  # digits convert exactly
        (1700000000123, triggers.MS, 1700000000123 * 10**6),
        (1545084650.987, triggers.SECONDS, int(1545084650.987 * 10**9)),
        ("1545084650", triggers.SECONDS, 1545084650 * 10**9),
        ("2024-01-02T03:04:05.678Z", triggers.ISO, 1704164645678 * 10**6),
        ("2024-01-02T03:04:05.678", triggers.ISO, 1704164645678 * 10**6),  # AWS writes UTC
        ("2024-01-02T04:04:05.678+01:00", triggers.ISO, 1704164645678 * 10**6),
        ("2024-01-02", triggers.ISO, None),
        ("x" * 41, triggers.ISO, None),
        ("not a date at all!!", triggers.ISO, None),
        (0, triggers.MS, None),
        (-5, triggers.SECONDS, None),
        (1e16, triggers.MS, None),
        ("nan", triggers.MS, None),
        ("1" * 40, triggers.MS, None),
        (True, triggers.MS, None),
        (None, triggers.SECONDS, None),
        (["1"], triggers.MS, None),
    ],
)
def test_epoch_ns(value: Any, unit: str, expected: Any) -> None:
    assert triggers.epoch_ns(value, unit) == expected


def test_function_url_event_time_is_its_request_time() -> None:
    event = _load("lambda-url.json")
    assert extract_context(event).event_time_ns == event["requestContext"]["timeEpoch"] * 10**6


def test_malformed_records_have_no_time() -> None:
    event = _load("sqs-string-msg-attribute.json")
    event["Records"][0]["attributes"] = "not a dict"
    assert extract_context(event).event_time_ns is None
    assert triggers.row_of(detect.SQS).event_time_ns({"Records": []}) is None


def _follows(fingerprint: Any, set_a: Any, delete_a: Any) -> None:
    """The token stays the same object until a variable changes, and differs after each change."""
    seen = [fingerprint()]
    assert fingerprint() is seen[0]
    for change in (lambda: set_a("1"), lambda: set_a("2"), delete_a):
        change()
        token = fingerprint()
        assert all(token != earlier for earlier in seen) and fingerprint() is token
        seen.append(token)


def test_env_fingerprint_follows_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_DD_LAMBDA_TEST_A", raising=False)
    fingerprint = config.env_fingerprint(("OTEL_DD_LAMBDA_TEST_A", "PATH"))
    _follows(fingerprint, lambda value: monkeypatch.setenv("OTEL_DD_LAMBDA_TEST_A", value),
             lambda: monkeypatch.delenv("OTEL_DD_LAMBDA_TEST_A"))


def test_env_fingerprint_of_another_mapping_reads_it_live() -> None:
    # the path taken off CPython/posix: the mapping's own items and keys
    environ: Dict[str, str] = {"B": "x"}
    fingerprint = config.env_fingerprint(("A", "B"), environ)
    _follows(fingerprint, lambda value: environ.__setitem__("A", value), lambda: environ.pop("A"))


def test_env_cached_builds_once_per_change(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_DD_LAMBDA_TEST_B", raising=False)
    built: List[Any] = []

    def build() -> Any:
        built.append(os.environ.get("OTEL_DD_LAMBDA_TEST_B"))
        return len(built)

    current = config.env_cached(("OTEL_DD_LAMBDA_TEST_B",), build)
    assert built == []  # nothing read before the first call
    assert (current(), current()) == (1, 1)
    monkeypatch.setenv("OTEL_DD_LAMBDA_TEST_B", "x")
    assert (current(), current()) == (2, 2) and built == [None, "x"]


def test_settings_are_rebuilt_only_when_a_variable_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    event = _load("sqs-batch.json")
    monkeypatch.delenv("DD_BATCH_PARENT", raising=False)
    first = extract._settings()
    assert extract._settings() is first
    assert extract_context(event).parent is not None
    monkeypatch.setenv("DD_BATCH_PARENT", "none")
    assert extract._settings() is not first
    assert extract_context(event).parent is None and extract_context(event).links
    monkeypatch.setenv("DD_TRACE_PROPAGATION_STYLE_EXTRACT", "none")
    assert not extract_context(event).links


def test_custom_extractor_keeps_the_event_time(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # The event time belongs to the event, wherever the parent came from (the inferred span needs it).
    (tmp_path / "my_extractor_event_time.py").write_text("def extract(event, context):\n    return (5, 6, 1)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("DD_TRACE_EXTRACTOR", "my_extractor_event_time.extract")
    event = _load("sqs-string-msg-attribute.json")
    sent_ms = int(time.time() * 1000)
    event["Records"][0]["attributes"]["SentTimestamp"] = str(sent_ms)
    result = extract_context(event)
    assert result.source == "custom" and result.event_time_ns == sent_ms * 10**6


@pytest.mark.parametrize("bytes_view", [True, False], ids=["os.environ bytes", "mapping fallback"])
def test_lambda_trace_header_follows_the_environment(monkeypatch: pytest.MonkeyPatch, bytes_view: bool) -> None:
    """Read anew on every call, through os.environ's own bytes or (off posix) its mapping."""
    if not bytes_view:
        monkeypatch.setattr(config, "_environ_bytes", lambda: None)
    else:
        assert config._environ_bytes() is not None  # this machine takes the bytes path
    monkeypatch.delenv("_X_AMZN_TRACE_ID", raising=False)
    assert config.lambda_trace_header() is None
    header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    monkeypatch.setenv("_X_AMZN_TRACE_ID", header)
    assert config.lambda_trace_header() == header
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-\udcff")  # undecodable bytes, as os.environ decodes them
    assert config.lambda_trace_header() == os.environ["_X_AMZN_TRACE_ID"]
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "")
    assert config.lambda_trace_header() is None
    assert config.lambda_trace_header({"_X_AMZN_TRACE_ID": "x"}) == "x"
@pytest.fixture
def default_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default settings, whatever an earlier test left in the environment."""
    for name in extract._ENV_NAMES + (config.KEEP_URL_QUERY_ENV,):
        monkeypatch.delenv(name, raising=False)


def _sqs_record(i: int, value: Any, trace_header: str = "") -> Dict[str, Any]:
    record: Dict[str, Any] = {"messageId": "m%d" % i, "eventSource": "aws:sqs", "body": "b",
                              "messageAttributes": {"_datadog": {"dataType": "String", "stringValue": value}}}
    if trace_header:
        record["attributes"] = {"AWSTraceHeader": trace_header}
    return record


def test_a_batch_resolves_each_repeated_datadog_attribute_once(monkeypatch: pytest.MonkeyPatch, default_env: None) -> None:
    same = json.dumps({"x-datadog-trace-id": "11", "x-datadog-parent-id": "22"})
    other = json.dumps({"x-datadog-trace-id": "33", "x-datadog-parent-id": "44"})
    event = {"Records": [_sqs_record(i, other if i == 2 else same) for i in range(5)]}
    calls: List[Any] = []
    resolve = extract.resolve
    monkeypatch.setattr(extract, "resolve", lambda c, p=None: calls.append(c) or resolve(c, p))
    result = extract_context(event)
    assert result.parent is not None and result.parent.trace_id == 11
    assert [(link.context.trace_id, link.attributes["messaging.message.id"]) for link in result.links] == [
        (11, "m0"), (11, "m1"), (33, "m2"), (11, "m3"), (11, "m4")]
    assert len(calls) == 1  # the first record's through _with_baggage, then "other" once


def test_a_batch_attribute_that_does_not_decide_is_not_remembered(default_env: None) -> None:
    # Invalid JSON in _datadog: each record falls back to its own AWSTraceHeader.
    headers = ["Root=1-5759e988-bd862e3fe1be46a99427279%d;Parent=53995c3f4266210%d;Sampled=1" % (i, i)
               for i in range(3)]
    event = {"Records": [_sqs_record(i, "{not json", headers[i]) for i in range(3)]}
    result = extract_context(event)
    span_ids = [link.context.span_id for link in result.links]
    assert len(span_ids) == 3 and len(set(span_ids)) == 3


def test_sns_binary_batch_repeats_are_resolved_alike(default_env: None) -> None:
    import base64

    value = base64.b64encode(json.dumps({"x-datadog-trace-id": "7", "x-datadog-parent-id": "8"}).encode()).decode()
    records = [{"EventSource": "aws:sns", "Sns": {"MessageId": "s%d" % i, "MessageAttributes": {
        "_datadog": {"Type": "Binary", "Value": value}}}} for i in range(3)]
    result = extract_context({"Records": records})
    assert [link.context.trace_id for link in result.links] == [7, 7, 7]


def test_baggage_is_read_where_a_spelling_of_its_header_is_present(default_env: None) -> None:
    dd = json.dumps({"x-datadog-trace-id": "11", "x-datadog-parent-id": "22", "baggage": "k=v"})
    assert extract_context({"Records": [_sqs_record(0, dd)]}).baggage == {"k": "v"}
    only_trace = json.dumps({"x-datadog-trace-id": "11", "x-datadog-parent-id": "22"})
    assert extract_context({"Records": [_sqs_record(0, only_trace)]}).baggage is None
    event = _load("api-gateway.json")
    assert extract_context(event).baggage is None
    event["headers"]["Baggage"] = "user.id=u1"
    assert extract_context(event).baggage == {"user.id": "u1"}


def test_http_tags_find_a_header_in_any_case_and_read_odd_keys(default_env: None) -> None:
    from otel_dd_lambda.carriers.http import first_value

    assert first_value({"Host": "h", "REFERER": "https://r"}, "referer") == "https://r"
    assert first_value({"Host": "h"}, "referer") is None
    assert first_value({1: "x", "Referer": ["https://r"]}, "referer") == "https://r"  # a non-str key: the loop
    event = _load("api-gateway.json")
    event["headers"]["rEfErEr"] = "https://r/?q=1"
    assert extract_context(event).trigger_tags["http.referer"] == "https://r/"
