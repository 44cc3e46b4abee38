"""Untrusted event input has bounded cost: gzip bombs, oversized base64, deep JSON nesting.

Each case checks the outcome (no context / the fallback tag, a debug log saying why) and, where
the input could blow up, the memory the extraction allocated (tracemalloc peak: deterministic,
unlike time). A benign twin of each hostile input still extracts, so the checks can fail.
"""

from __future__ import annotations

import base64
import json
import logging
import tracemalloc
from typing import Any, Callable, Dict, Tuple

import pytest

from otel_dd_lambda import extract_context
from otel_dd_lambda.carriers.common import MAX_EVENT, gunzip_b64_prefix, json_member
from otel_dd_lambda.carriers.tags import MAX_AWSLOGS_PREFIX
from tests.support.hostile import gzip_b64

CTX = {"x-datadog-trace-id": "123", "x-datadog-parent-id": "456", "x-datadog-sampling-priority": "1"}
HEAD = b'{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"/aws/lambda/bomb",'


@pytest.fixture(autouse=True)
def _no_lambda_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("_X_AMZN_TRACE_ID", raising=False)
    monkeypatch.setenv("AWS_REGION", "us-east-1")


def measured(fn: Callable[[], Any]) -> Tuple[Any, int]:
    """``fn()`` and the peak bytes it allocated."""
    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def log_group_arn(event: Dict[str, Any]) -> str:
    return extract_context(event).trigger_tags["function_trigger.event_source_arn"]


MIB = 1 << 20
SPACES = b" " * MIB


def test_gzip_bomb_inflates_only_the_head():
    # 200 MiB of whitespace after the head (the 1 GB bomb has the same shape, 5x longer)
    data = gzip_b64((HEAD + b'"logEvents":[', 1), (SPACES, 200), (b"]}", 1))
    assert len(data) < 300_000
    arn, peak = measured(lambda: log_group_arn({"awslogs": {"data": data}}))
    assert arn.endswith(":log-group:/aws/lambda/bomb")
    assert peak < 4 * MAX_AWSLOGS_PREFIX  # the prefix, one base64 step and zlib's window


def test_gzip_bomb_before_the_log_group_falls_back(caplog):
    data = gzip_b64((b'{"messageType":"', 1), (b"A" * MIB, 200), (b'","logGroup":"late"}', 1))
    with caplog.at_level(logging.DEBUG, logger="otel_dd_lambda"):
        arn, peak = measured(lambda: log_group_arn({"awslogs": {"data": data}}))
    assert arn.endswith(":log-group:cloudwatch")
    assert "CloudWatch Logs data unreadable" in caplog.text
    assert peak < 4 * MAX_AWSLOGS_PREFIX


def test_real_shaped_payload_of_many_megabytes_keeps_its_log_group():
    events = [{"id": str(i), "timestamp": 1440442987000 + i, "message": "line %d \u00e9\u4e2d" % i}
              for i in range(60_000)]
    body = json.dumps({"messageType": "DATA_MESSAGE", "owner": "123456789012", "logGroup": "/aws/lambda/real",
                       "logStream": "s", "subscriptionFilters": ["f"], "logEvents": events}).encode()
    assert len(body) > 3 * MIB
    assert log_group_arn({"awslogs": {"data": gzip_b64((body, 1))}}).endswith(":log-group:/aws/lambda/real")


@pytest.mark.parametrize("data", [
    "not base64!", base64.b64encode(b"not gzip at all").decode(), "A" * (MAX_EVENT + 4), 12, None,
    gzip_b64((b"[1, 2, 3]", 1)), gzip_b64((b'{"logGroup": 5}', 1)), gzip_b64((b"{" * 100_000, 1)),
    gzip_b64((b'{"logGroup":"' + b"x" * (MAX_AWSLOGS_PREFIX + 10) + b'"}', 1)),
    gzip_b64((b'{"a":1,' * 1000 + b'"logGroup":"too-far"}', 1)),
])
def test_unreadable_awslogs_data_falls_back(data, caplog):
    with caplog.at_level(logging.DEBUG, logger="otel_dd_lambda"):
        arn, peak = measured(lambda: log_group_arn({"awslogs": {"data": data}}))
    assert arn.endswith(":log-group:cloudwatch")
    assert "log group unknown" in caplog.text
    assert peak < 4 * MAX_AWSLOGS_PREFIX


def test_truncated_gzip_still_gives_the_head():
    whole = base64.b64decode(gzip_b64((HEAD + b'"logEvents":[]}', 1)))
    cut = base64.b64encode(whole[:-12]).decode()  # the trailer (CRC, size) and a bit of the stream gone
    assert gunzip_b64_prefix(cut, 1000) is not None


def test_json_member_walks_members_in_order_and_stops():
    assert json_member(' {"a": [1, {"b": 2}], "k" : "v", "z": [', "k") == "v"
    assert json_member('{"a": 1}', "k") is None
    assert json_member('{"a": 1, "k": 2', "k") == 2
    assert json_member("[1]", "k") is None and json_member("", "k") is None


# ------------------------------------------------------------------ JSON and base64 carriers

DEEP = "[" * 1_000_000  # far past the scanner's recursion limit


def sqs(attribute: Dict[str, Any] = None, body: str = "x") -> Dict[str, Any]:
    record = {"eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:1:q", "messageId": "m",
              "body": body, "attributes": {}, "messageAttributes": {}}
    if attribute is not None:
        record["messageAttributes"]["_datadog"] = attribute
    return {"Records": [record]}


def kinesis(data: str) -> Dict[str, Any]:
    return {"Records": [{"eventSource": "aws:kinesis", "eventSourceARN": "arn:aws:kinesis:us-east-1:1:stream/s",
                         "kinesis": {"data": data, "sequenceNumber": "1"}}]}


def sns(value: str, kind: str = "Binary") -> Dict[str, Any]:
    return {"Records": [{"EventSource": "aws:sns", "Sns": {
        "TopicArn": "arn:aws:sns:us-east-1:1:t", "MessageId": "m",
        "MessageAttributes": {"_datadog": {"Type": kind, "Value": value}}}}]}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def notification(datadog: str) -> str:
    return json.dumps({"Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:1:t", "Message": "m",
                       "MessageAttributes": {"_datadog": {"Type": "String", "Value": datadog}}})


GOOD = json.dumps(CTX)
# (benign event, its hostile twin, what the debug log says about the twin)
CASES = {
    "sqs-string-deep": (sqs({"dataType": "String", "stringValue": GOOD}),
                        sqs({"dataType": "String", "stringValue": "{" + '"a":' * 1200 + "1" + "}" * 1200}),
                        "not valid JSON"),
    "sqs-string-huge": (sqs({"dataType": "String", "stringValue": GOOD}),
                        sqs({"dataType": "String", "stringValue": GOOD[:-1] + ',"pad":"' + "x" * MIB + '"}'}),
                        "over the"),
    "sqs-binary-huge": (sqs({"dataType": "Binary", "binaryValue": b64(GOOD)}),
                        sqs({"dataType": "Binary", "binaryValue": b64(GOOD) * 10_000}), "over the"),
    "sqs-body-deep": (sqs(body=notification(GOOD)),
                      sqs(body='{"Type":"Notification","TopicArn":"t","_datadog":' + DEEP), "not valid JSON"),
    "sqs-body-huge": (sqs(body=notification(GOOD)), sqs(body=notification(GOOD) + " " * (2 * MIB)), "over the"),
    "kinesis-deep": (kinesis(b64(json.dumps({"_datadog": CTX}))),
                     kinesis(b64('{"_datadog":' + "[" * 500_000)), "not valid JSON"),
    "kinesis-huge": (kinesis(b64(json.dumps({"_datadog": CTX}))),
                     kinesis(b64(json.dumps({"_datadog": CTX, "pad": "x" * (2 * MIB)}))), "over the"),
    "sns-binary-deep": (sns(b64(GOOD)), sns(b64("{" + '"a":' * 1500 + "1" + "}" * 1500)), "not valid JSON"),
    "sns-string-huge": (sns(GOOD, "String"), sns(GOOD + " " * 10_000, "String"), "over the"),
    "top-level-deep": ({"_datadog": GOOD}, {"_datadog": "{" + '"a":' * 1200 + "1" + "}" * 1200}, "not valid JSON"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_carrier_is_no_context_with_a_debug_log(name, caplog):
    benign, hostile, reason = CASES[name]
    assert extract_context(benign).parent is not None  # the twin carries a context
    with caplog.at_level(logging.DEBUG, logger="otel_dd_lambda"):
        result, peak = measured(lambda: extract_context(hostile))
    assert result.parent is None and not result.links
    assert reason in caplog.text
    # an oversized carrier is never decoded and deep nesting stops at the recursion limit: the
    # extraction allocates far less than the hostile string, except a Kinesis record within its
    # 1 MiB limit, which is decoded to be searched (bytes, then text: twice its size at most)
    size = len(hostile["Records"][0]["kinesis"]["data"]) * 2 if name.startswith("kinesis-deep") else 0
    assert peak < 256 * 1024 + size


# with almost no stack left any of our frames may hit the limit first: extraction then logs that
# RecursionError with its traceback (the guard would call it a bug) and answers "no context"
@pytest.mark.internal_error_expected
def test_deep_nesting_inside_a_deep_call_stack():
    """The scanner's RecursionError is caught however little stack the caller left."""
    event = sqs({"dataType": "String", "stringValue": "[" * 5000})

    def nest(depth: int) -> Any:
        return extract_context(event) if depth == 0 else nest(depth - 1)

    for depth in (0, 300, 700, 950):
        try:
            result = nest(depth)
        except RecursionError:  # the test's own recursion ran out first: nothing to check there
            continue
        assert result.parent is None
