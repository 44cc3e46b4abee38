"""Lambda durable functions, against datadog_lambda (run in a subprocess) on generated events.

Events as Lambda sends them to a durable function: ``DurableExecutionArn`` (well-formed ARNs with
random execution names and ids, and malformed ones), ``InitialExecutionState.Operations`` (a list
or an id -> operation mapping) holding user steps and ``_datadog_<N>`` trace checkpoints with
random ``N`` (duplicates, negatives, signs, spaces, non-numbers) whose ``StepDetails.Result`` is
what ddtrace's checkpoint writer stores (compact JSON of ``x-datadog-*`` headers), an object, or
junk. For every event: our ``aws.durable.*`` start tags equal the reference's
(``extract_durable_function_tags``), the checkpoint context we resolve equals the one the
reference's ``extract_dd_trace_context`` returns (trace id, span id, priority, ``_dd.p.tid``,
origin), and ``aws.durable.execution_status`` for several responses equals
``extract_durable_execution_status``'s. Then the wrapper: the invocation span carries the tags.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any, Dict, List, Optional

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from otel_dd_lambda import extract_context, ids, instrument_handler
from otel_dd_lambda.carriers import durable as durable_carrier
from otel_dd_lambda.extract import resolve
from otel_dd_lambda.propagators import ddstate
from otel_dd_lambda.runtime import durable
from tests.support.wrapper import FakeContext, pipeline

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

RESPONSES: List[Any] = [
    None, {"Status": "SUCCEEDED", "Result": "{}"}, {"Status": "FAILED", "Error": {}}, {"Status": "PENDING"},
    {"Status": "succeeded"}, {"Status": "RUNNING"}, {"Status": 1}, {}, "SUCCEEDED", [{"Status": "FAILED"}],
]

_REFERENCE = r"""
import json, sys
from datadog_lambda.durable import extract_durable_function_tags, extract_durable_execution_status
from datadog_lambda.tracing import extract_dd_trace_context

class Ctx:
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:myfn"
    client_context = None

events, responses = json.load(sys.stdin)
out = []
for event in events:
    context, source, _ = extract_dd_trace_context(event, Ctx())
    ctx = None
    if str(getattr(source, "value", source)) == "event":
        ctx = {"trace_id": context.trace_id, "span_id": context.span_id,
               "sampling_priority": context.sampling_priority, "meta": dict(context._meta)}
    out.append({"tags": extract_durable_function_tags(event), "context": ctx,
                "status": [extract_durable_execution_status(r, event) for r in responses]})
print(json.dumps(out))
"""


def reference(events: List[Any]) -> List[Dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DD_", "_X_AMZN", "OTEL_"))}
    env["DD_INSTRUMENTATION_TELEMETRY_ENABLED"] = "false"
    done = subprocess.run([sys.executable, "-c", _REFERENCE], input=json.dumps([events, RESPONSES]),
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    if done.returncode:
        raise RuntimeError("reference failed:\n" + done.stderr[done.stderr.rfind("Traceback"):][-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ("_X_AMZN_TRACE_ID", "DD_TRACE_EXTRACTOR", "DD_BATCH_PARENT", "DD_TRACE_PROPAGATION_STYLE",
                 "DD_TRACE_PROPAGATION_STYLE_EXTRACT", "OTEL_PROPAGATORS"):
        monkeypatch.delenv(name, raising=False)


# ---------------------------------------------------------------- generated durable events

_SEGMENT = st.text(st.sampled_from("abcXYZ019-_.:$/\n é"), max_size=12)
_REGIONS = st.sampled_from(["us-east-1", "eu-west-3", "ap-southeast-2"])


@st.composite
def arns(draw) -> Any:
    kind = draw(st.integers(0, 9))
    if kind == 9:
        return draw(st.none() | st.integers() | st.lists(st.text(max_size=3), max_size=2))
    if kind == 8:
        return draw(st.text(max_size=60))
    base = "arn:aws:lambda:%s:%d:function:%s:%s" % (
        draw(_REGIONS), draw(st.integers(10**11, 10**12 - 1)),
        draw(st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True)), draw(st.sampled_from(["1", "$LATEST", "prod"])))
    if kind == 7:  # malformed tails
        return base + draw(st.sampled_from(["", "/durable-execution", "/durable-execution/", "/durable-execution//x",
                                            "/durable-execution/x/", "/durable-executions/a/b", "/a/b/c/d"]))
    marker = "durable-execution" if kind < 6 else draw(st.sampled_from(["durable-execution", "Durable-Execution"]))
    name = draw(st.uuids().map(str) | _SEGMENT)
    execution_id = draw(st.uuids().map(str) | _SEGMENT)
    return "%s/%s/%s/%s" % (base, marker, name, execution_id)


def _u64(draw) -> int:
    return draw(st.integers(1, 2**64 - 1) | st.sampled_from([1, 2**63 - 1, 2**63, 2**64 - 1]))


@st.composite
def checkpoint_payloads(draw) -> Any:
    """What ddtrace's writer stores (compact JSON of x-datadog-* headers), or something else."""
    kind = draw(st.integers(0, 9))
    if kind >= 8:
        return draw(st.none() | st.text(max_size=20) | st.integers() | st.sampled_from(["", "{", "[]", "null", "{}"]))
    headers = {"x-datadog-trace-id": str(_u64(draw)), "x-datadog-parent-id": str(_u64(draw)),
               "x-datadog-sampling-priority": draw(st.sampled_from(["-1", "0", "1", "2"]))}
    if draw(st.booleans()):
        headers["x-datadog-origin"] = draw(st.sampled_from(["lambda", "synthetics", "rum"]))
    tags = []
    if draw(st.booleans()):
        tags.append("_dd.p.tid=%016x" % draw(st.integers(1, 2**32 - 1).map(lambda s: s << 32)))
    if draw(st.booleans()):
        tags.append("_dd.p.dm=-%d" % draw(st.integers(0, 4)))
    if tags:
        headers["x-datadog-tags"] = ",".join(tags)
    if kind == 7:
        return headers  # an object rather than its JSON text
    return json.dumps(headers, separators=(",", ":"))


_CHECKPOINT_SUFFIXES = (st.integers(-3, 40).map(str) | st.sampled_from(
                        ["", "x", "1.5", " 7", "+3", "0012", "1_0", "٣", "-0", "99999999999999999999"]))


@st.composite
def operations(draw) -> List[Dict[str, Any]]:
    ops = [{"Id": "exec-0", "Type": "EXECUTION", "Status": "STARTED",
            "ExecutionDetails": {"InputPayload": "{}"}}]
    for index in range(draw(st.integers(0, 7))):
        if draw(st.booleans()):
            name = "_datadog_" + draw(_CHECKPOINT_SUFFIXES)
        else:
            name = draw(st.sampled_from(["charge-card", "wait-1", "_datadog", "_dd_1", "datadog_2"]))
        op: Dict[str, Any] = {"Id": "op-%d" % index, "Type": "STEP", "Status": "SUCCEEDED", "Name": name}
        if draw(st.integers(0, 9)) < 8:
            op["StepDetails"] = {"Result": draw(checkpoint_payloads())}
        else:
            op["StepDetails"] = draw(st.none() | st.text(max_size=5) | st.just({}))
        ops.append(op)
    if draw(st.integers(0, 9)) == 0:
        ops.insert(draw(st.integers(0, len(ops))), draw(st.none() | st.text(max_size=4) | st.integers()))
    return ops


@st.composite
def durable_events(draw) -> Dict[str, Any]:
    event: Dict[str, Any] = {"DurableExecutionArn": draw(arns()), "CheckpointToken": draw(st.text(max_size=8))}
    shape = draw(st.integers(0, 9))
    if shape == 9:
        return event  # no execution state
    if shape == 8:
        # (Operations as null or a string: the reference raises, or counts the characters; see
        # test_operations_of_another_type_are_not_a_first_invocation)
        event["InitialExecutionState"] = draw(st.sampled_from([{}, {"Operations": []}, {"NextMarker": "m"}]))
        return event
    ops = draw(operations())
    if shape == 7:
        ops = {op["Id"] if isinstance(op, dict) else "junk-%d" % i: op for i, op in enumerate(ops)}
    event["InitialExecutionState"] = {"Operations": ops, "NextMarker": ""}
    return event


def _priority(span_context) -> int:
    return ddstate.sampling_priority(span_context.trace_flags.sampled,
                                     ddstate.parse_dd_member(span_context.trace_state.get("dd")))


def _same_context(ours, want: Optional[Dict[str, Any]], event: Any) -> None:
    if want is None:
        assert ours is None, event
        return
    assert ours is not None, (event, want)
    assert ours.trace_id == want["trace_id"], event  # 128 bits: ddtrace folds _dd.p.tid in
    assert ours.span_id == want["span_id"], event
    assert _priority(ours) == want["sampling_priority"], event
    tid = want["meta"].get("_dd.p.tid")
    assert ids.format_tid(ours.trace_id) == tid if tid else ours.trace_id >> 64 == 0, event
    origin = want["meta"].get("_dd.origin")
    assert ddstate.parse_dd_member(ours.trace_state.get("dd")).origin == origin, event


# no shrinking: each example costs a reference subprocess; the assertion names the event
@settings(max_examples=4, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(events=st.lists(durable_events(), min_size=60, max_size=80))
def test_tags_context_and_status_equal_the_reference(events):
    want = reference(events)
    for event, expected in zip(events, want):
        assert durable.start_tags(event) == expected["tags"], event
        parent, _ = resolve(durable_carrier.checkpoint_carrier(event))
        _same_context(parent, expected["context"], event)
        assert [durable.execution_status(event, r) for r in RESPONSES] == expected["status"], event


def _checkpointed(trace_id: int, parent_id: int, replays: int = 2) -> Dict[str, Any]:
    ops: List[Dict[str, Any]] = [{"Id": "exec", "Type": "EXECUTION", "Status": "STARTED"}]
    for n in range(replays):  # every checkpoint keeps the first one's parent id (ddtrace's rule)
        headers = {"x-datadog-trace-id": str(trace_id + n), "x-datadog-parent-id": str(parent_id),
                   "x-datadog-sampling-priority": "1", "x-datadog-tags": "_dd.p.tid=6a1b2c3d00000000"}
        ops.append({"Id": "cp-%d" % n, "Type": "STEP", "Name": "_datadog_%d" % n, "Status": "SUCCEEDED",
                    "StepDetails": {"Result": json.dumps(headers, separators=(",", ":"))}})
        ops.append({"Id": "step-%d" % n, "Type": "STEP", "Name": "charge-%d" % n, "Status": "SUCCEEDED",
                    "StepDetails": {"Result": '{"ok":true}'}})
    arn = "arn:aws:lambda:us-east-1:123456789012:function:orders:3/durable-execution/order-42/9f1c-77"
    return {"DurableExecutionArn": arn, "CheckpointToken": "tok",
            "InitialExecutionState": {"Operations": ops, "NextMarker": ""}}


def test_invocation_span_carries_the_durable_tags_and_checkpoint_parent():
    provider, exporter = pipeline()
    replay = _checkpointed(1111, 2222)
    first = _checkpointed(0, 0, replays=0)

    @instrument_handler(tracer_provider=provider)
    def handler(event, context):
        return {"Status": "PENDING"} if len(event["InitialExecutionState"]["Operations"]) == 1 else {
            "Status": "SUCCEEDED", "Result": "done"}

    assert handler(first, FakeContext(request_id="r1")) == {"Status": "PENDING"}
    assert handler(replay, FakeContext(request_id="r2")) == {"Status": "SUCCEEDED", "Result": "done"}
    spans = [s for s in exporter.get_finished_spans() if s.attributes.get("request_id") in ("r1", "r2")]
    by_request = {s.attributes["request_id"]: s for s in spans}
    want = reference([first, replay])
    for request_id, expected, status in (("r1", want[0], "PENDING"), ("r2", want[1], "SUCCEEDED")):
        attributes = by_request[request_id].attributes
        durable_tags = {k: v for k, v in attributes.items() if k.startswith("aws.durable.")}
        assert durable_tags == dict(expected["tags"], **{"aws.durable.execution_status": status})
    assert want[1]["tags"]["aws.durable.first_invocation"] == "false"
    # the replay continues the trace saved by the latest checkpoint (_datadog_1)
    carrier = durable_carrier.checkpoint_carrier(replay)
    assert carrier is not None and carrier["x-datadog-trace-id"] == "1112"
    _same_context(resolve(carrier)[0], want[1]["context"], replay)


def test_an_error_or_a_non_durable_event_gets_no_durable_tag():
    provider, exporter = pipeline()

    @instrument_handler(tracer_provider=provider)
    def handler(event, context):
        if event.get("fail"):
            raise ValueError("boom")
        return {"Status": "SUCCEEDED"}

    handler({"Status": "SUCCEEDED", "order": 1}, FakeContext(request_id="plain"))
    with pytest.raises(ValueError):
        handler(dict(_checkpointed(5, 6), fail=True), FakeContext(request_id="failed"))
    spans = {s.attributes.get("request_id"): s for s in exporter.get_finished_spans()}
    assert not [k for k in spans["plain"].attributes if k.startswith("aws.durable.")]
    failed = spans["failed"].attributes
    assert failed["aws.durable.execution_id"] == "9f1c-77" and "aws.durable.execution_status" not in failed


def test_operations_of_another_type_are_not_a_first_invocation():
    # The reference counts a string's characters ("x": first) and raises on null (no span at all);
    # neither is an operation log: ours says "false" and still tags the execution.
    arn = "arn:aws:lambda:us-east-1:123456789012:function:f:1/durable-execution/n/i"
    for ops in (None, "x", 1, {"a": 1}):
        tags = durable.start_tags({"DurableExecutionArn": arn, "InitialExecutionState": {"Operations": ops}})
        assert tags["aws.durable.first_invocation"] == ("true" if ops == {"a": 1} else "false")
        assert tags["aws.durable.execution_id"] == "i"
    assert durable.start_tags({"DurableExecutionArn": arn, "InitialExecutionState": "x"})[
        "aws.durable.first_invocation"] == "false"


@given(event=st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                          lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                              st.sampled_from(["DurableExecutionArn", "InitialExecutionState", "Operations", "Name",
                                               "StepDetails", "Result", "x"]), inner, max_size=4), max_leaves=30))
@settings(max_examples=300, deadline=None)
def test_hostile_events_never_raise(event):
    durable.start_tags(event)
    durable.execution_status(event, event)
    durable.end_tags(event)
    durable_carrier.checkpoint_carrier(event)
    extract_context(event)


def test_extract_context_reads_the_checkpoint():
    event = _checkpointed(1111, 2222)
    parent = extract_context(event).parent
    assert parent is not None and parent.span_id == 2222 and parent.trace_id & ids.LOW64_MASK == 1112
