"""instrument_handler: results, exceptions, cold starts, tags, links, flushing, disabled mode."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import traceback

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from otel_dd_lambda import config
from otel_dd_lambda.runtime import cold_start, invocation
from otel_dd_lambda.runtime.wrapper import instrument_handler
from tests.support.reference import reference_trigger_tags
from tests.support.wrapper import ARN, FakeContext, by_name, fresh_sandbox, manifest, pipeline, sample


@pytest.fixture(autouse=True)
def _sandbox(monkeypatch):
    yield from fresh_sandbox(monkeypatch, ("DD_TRACE_ENABLED", "DD_MERGE_XRAY_TRACES", "_X_AMZN_TRACE_ID",
                                           "DD_TRACE_MANAGED_SERVICES", "OTEL_SDK_DISABLED", "DD_SERVICE",
                                           "DD_CAPTURE_LAMBDA_PAYLOAD", "DD_CAPTURE_LAMBDA_PAYLOAD_MAX_DEPTH"))


def invocation_span(spans):
    found = [s for s in spans if "faas.invocation_id" in s.attributes]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def test_result_is_the_same_object_and_span_is_flushed():
    provider, memory = pipeline()
    result = {"statusCode": 200, "body": "ok"}

    @instrument_handler(tracer_provider=provider)
    def handler(event, context):
        return result

    assert handler({}, FakeContext()) is result
    span = invocation_span(memory.get_finished_spans())
    assert span.attributes["faas.invocation_id"] == "req-0001"
    assert span.attributes["request_id"] == "req-0001"
    assert span.attributes["function_arn"] == "arn:aws:lambda:us-east-1:123456789012:function:my-func"
    assert span.attributes["function_version"] == "prod"
    assert span.attributes["cloud.resource_id"] == ARN
    assert span.attributes["cloud.account.id"] == "123456789012"
    assert span.attributes["functionname"] == "my-func"
    assert handler.__name__ == "handler"


def test_exception_is_the_same_object_with_its_traceback():
    provider, memory = pipeline()
    error = ValueError("boom")

    @instrument_handler(tracer_provider=provider)
    def handler(event, context):
        raise error

    with pytest.raises(ValueError) as caught:
        handler({}, FakeContext())
    assert caught.value is error
    frames = traceback.extract_tb(caught.value.__traceback__)
    assert frames[-1].name == "handler" and frames[-1].line == "raise error"
    assert error.__context__ is None and error.__cause__ is None
    span = invocation_span(memory.get_finished_spans())
    assert span.status.status_code is StatusCode.ERROR
    assert span.events[0].name == "exception"
    assert span.events[0].attributes["exception.type"] == "ValueError"


def test_base_exceptions_pass_through_unchanged():
    provider, memory = pipeline()

    @instrument_handler(tracer_provider=provider)
    def handler(event, context):
        sys.exit(3)

    with pytest.raises(SystemExit) as caught:
        handler({}, FakeContext())
    assert caught.value.code == 3
    assert invocation_span(memory.get_finished_spans()).status.status_code is StatusCode.ERROR


def test_cold_start_only_on_the_first_invocation():
    provider, memory = pipeline()
    handler = instrument_handler(lambda event, context: None, tracer_provider=provider)
    for _ in range(3):
        handler({}, FakeContext())
    spans = memory.get_finished_spans()
    assert [s.attributes["cold_start"] for s in spans] == ["true", "false", "false"]
    assert [s.attributes["faas.coldstart"] for s in spans] == [True, False, False]
    assert all("proactive_initialization" not in s.attributes for s in spans)


def test_proactive_initialization_is_not_a_cold_start():
    cold_start._reset_for_tests(init_ns=time.time_ns() - 11 * 1_000_000_000)
    provider, memory = pipeline()
    handler = instrument_handler(lambda event, context: None, tracer_provider=provider)
    handler({}, FakeContext())
    handler({}, FakeContext())
    first, second = memory.get_finished_spans()
    assert first.attributes["cold_start"] == "false"
    assert first.attributes["proactive_initialization"] == "true"
    assert "proactive_initialization" not in second.attributes


def test_flush_gets_the_remaining_time_minus_the_margin(monkeypatch):
    monkeypatch.setenv("OTEL_DD_LAMBDA_FLUSH_MARGIN_MS", "100")
    provider, memory = pipeline()
    handler = instrument_handler(lambda event, context: "x", tracer_provider=provider)
    context = FakeContext(remaining_ms=1234)
    handler({}, context)
    assert handler.instrumentation.last_flush_timeout_ms == 1134
    # once at the start (the impending-timeout watchdog's deadline), once for the flush
    assert context.remaining_calls == 2
    assert len(memory.get_finished_spans()) == 1  # exported by the flush, not at shutdown


def test_no_time_left_means_no_flush_but_the_spans_wait():
    provider, memory = pipeline()
    handler = instrument_handler(lambda event, context: "x", tracer_provider=provider)
    handler({}, FakeContext(remaining_ms=10))
    assert memory.get_finished_spans() == ()
    handler({}, FakeContext(remaining_ms=5000))
    assert len(memory.get_finished_spans()) == 2


_TRIGGER_SAMPLES = ["sqs-string-msg-attribute.json", "sns-string-msg-attribute.json", "kinesis.json",
                    "dynamodb.json", "s3.json", "eventbridge-custom.json", "cloudwatch-events.json"]


@pytest.fixture(scope="module")
def datadog_lambda_tags():
    # datadog_lambda applies ddtrace's patch_all on import: asked in a subprocess, never here
    return reference_trigger_tags([("api-gateway.json", 503)] + [(name, None) for name in _TRIGGER_SAMPLES])


def test_http_trigger_tags_and_status_code_like_datadog_lambda(datadog_lambda_tags):
    provider, memory = pipeline()
    event = sample("api-gateway.json")
    response = {"statusCode": 503}

    @instrument_handler(tracer_provider=provider)
    def handler(event, context):
        return response

    context = FakeContext()
    assert handler(event, context) is response
    span = invocation_span(memory.get_finished_spans())
    assert span.kind is SpanKind.SERVER
    assert span.attributes["faas.trigger"] == "http"
    expected, status_tag = datadog_lambda_tags["api-gateway.json"]
    for key, value in expected.items():
        assert span.attributes[key] == value, key
    assert span.attributes["http.status_code"] == status_tag == "503"
    assert span.status.status_code is StatusCode.ERROR  # 5xx


@pytest.mark.parametrize("name", _TRIGGER_SAMPLES)
def test_trigger_tags_match_datadog_lambda(name, datadog_lambda_tags):
    provider, memory = pipeline()
    handler = instrument_handler(lambda event, context: None, tracer_provider=provider)
    event = sample(name)
    context = FakeContext()
    handler(event, context)
    span = invocation_span(memory.get_finished_spans())
    expected, _ = datadog_lambda_tags[name]
    assert expected  # the reference did tag it
    for key, value in expected.items():
        assert span.attributes[key] == value, key
    if name.startswith(("sqs", "sns", "kinesis")):
        assert span.kind is SpanKind.CONSUMER
        assert span.attributes["faas.trigger"] == "pubsub"


_DD_SPAN_TAGS = """
import json, sys
from datadog_lambda.tracing import create_function_execution_span
from datadog_lambda.trigger import extract_trigger_tags
from tests.support.wrapper import FakeContext, sample
event, context = sample("sqs-string-msg-attribute.json"), FakeContext()
span = create_function_execution_span(
    context=context, function_name="My-Func", is_cold_start=True, is_proactive_init=False,
    trace_context_source="event", merge_xray_traces=False, trigger_tags=extract_trigger_tags(event, context))
print(json.dumps(span.get_tags()))
"""


def test_function_span_tags_match_datadog_lambda():
    import subprocess

    # datadog_lambda.tracing patches logging (ddtrace) on import: keep it out of this process
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("DD_")}
    env["DD_TRACE_ENABLED"] = "false"
    proc = subprocess.run([sys.executable, "-c", _DD_SPAN_TAGS], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    theirs = json.loads(proc.stdout.strip().splitlines()[-1])
    provider, memory = pipeline()
    event = sample("sqs-string-msg-attribute.json")
    instrument_handler(lambda e, c: None, tracer_provider=provider)(event, FakeContext())
    ours = invocation_span(memory.get_finished_spans()).attributes
    for key in ("cold_start", "function_arn", "function_version", "request_id", "functionname",
                "resource_names", "function_trigger.event_source", "function_trigger.event_source_arn"):
        assert ours[key] == theirs[key], key


def test_parent_from_the_event_and_links_from_a_batch():
    provider, memory = pipeline()
    handler = instrument_handler(lambda event, context: None, tracer_provider=provider)
    event = sample("sqs-batch.json")
    # give the second record a context of another trace
    other = json.dumps({"x-datadog-trace-id": "777", "x-datadog-parent-id": "888", "x-datadog-sampling-priority": "1"})
    event["Records"][1]["messageAttributes"]["_datadog"]["stringValue"] = other
    handler(event, FakeContext())
    span = invocation_span(memory.get_finished_spans())
    expected = manifest()["events"]["sqs-batch.json"]["extracted"]
    assert span.parent.span_id == int(expected["span_id"])
    assert span.context.trace_id & ((1 << 64) - 1) == int(expected["trace_id"])
    linked = {(link.context.trace_id & ((1 << 64) - 1), link.context.span_id) for link in span.links}
    assert (777, 888) in linked
    assert span.attributes["messaging.batch.message_count"] == 2


def test_inferred_span_for_sqs_starts_at_sent_timestamp():
    provider, memory = pipeline()
    handler = instrument_handler(lambda event, context: None, tracer_provider=provider)
    event = sample("sqs-string-msg-attribute.json")
    sent_ms = int(time.time() * 1000) - 1500
    event["Records"][0]["attributes"]["SentTimestamp"] = str(sent_ms)
    handler(event, FakeContext())
    spans = memory.get_finished_spans()
    invocation = invocation_span(spans)
    inferred = by_name(spans)["aws.sqs"]
    assert inferred.start_time == sent_ms * 1_000_000
    assert inferred.end_time <= invocation.start_time  # async: ends when the function starts
    assert invocation.parent.span_id == inferred.context.span_id
    assert inferred.attributes["service.name"] == inferred.attributes["resource.name"] == "InferredSpansQueueNode"
    assert inferred.attributes["_inferred_span.synchronicity"] == "async"


def test_inferred_span_for_api_gateway_is_synchronous():
    provider, memory = pipeline()
    handler = instrument_handler(lambda event, context: {"statusCode": 201}, tracer_provider=provider)
    event = sample("api-gateway.json")
    event["requestContext"]["requestTimeEpoch"] = int(time.time() * 1000) - 20
    handler(event, FakeContext())
    spans = memory.get_finished_spans()
    invocation = invocation_span(spans)
    inferred = by_name(spans)["aws.apigateway"]
    assert invocation.parent.span_id == inferred.context.span_id
    assert inferred.end_time >= invocation.end_time
    assert inferred.attributes["http.status_code"] == "201"
    assert inferred.attributes["service.name"] == event["requestContext"]["domainName"]


def test_managed_services_off(monkeypatch):
    monkeypatch.setenv("DD_TRACE_MANAGED_SERVICES", "false")
    provider, memory = pipeline()
    handler = instrument_handler(lambda event, context: None, tracer_provider=provider)
    event = sample("sqs-string-msg-attribute.json")
    event["Records"][0]["attributes"]["SentTimestamp"] = str(int(time.time() * 1000))
    handler(event, FakeContext())
    assert [s.name for s in memory.get_finished_spans()] == ["My-Func"]


def test_disabled_returns_the_handler_unchanged(monkeypatch):
    monkeypatch.setenv("DD_TRACE_ENABLED", "false")

    def handler(event, context):
        return event

    assert instrument_handler(handler) is handler


def test_async_handler_runs_inside_the_span():
    provider, memory = pipeline()
    seen = {}

    @instrument_handler(tracer_provider=provider)
    async def handler(event, context):
        from opentelemetry import trace

        await asyncio.sleep(0)
        seen["span"] = trace.get_current_span().get_span_context().span_id
        return event["value"]

    value = object()
    assert handler({"value": value}, FakeContext()) is value
    assert invocation_span(memory.get_finished_spans()).context.span_id == seen["span"]


def test_span_is_current_in_the_handler_and_restored_after():
    from opentelemetry import trace

    provider, memory = pipeline()
    inside = {}

    @instrument_handler(tracer_provider=provider)
    def handler(event, context):
        inside["id"] = trace.get_current_span().get_span_context().span_id
        with provider.get_tracer("t").start_as_current_span("child"):
            pass

    handler({}, FakeContext())
    assert trace.get_current_span().get_span_context().is_valid is False
    spans = by_name(memory.get_finished_spans())
    assert spans["child"].parent.span_id == spans["My-Func"].context.span_id == inside["id"]


def test_cold_start_import_spans_under_the_first_invocation(monkeypatch, tmp_path):
    monkeypatch.setenv("DD_COLD_START_TRACING", "true")
    monkeypatch.setenv("DD_MIN_COLD_START_DURATION", "0")
    (tmp_path / "slow_mod_for_cold_start.py").write_text("import slow_child_for_cold_start\nX = 1\n")
    (tmp_path / "slow_child_for_cold_start.py").write_text("Y = 2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    provider, memory = pipeline()
    assert cold_start.install_import_hook()
    import slow_mod_for_cold_start  # noqa: F401

    # the loader we stood in for is back once the module ran (a SourceFileLoader, or the loader
    # of ddtrace's ModuleWatchdog when its pytest plugin is active)
    assert type(slow_mod_for_cold_start.__spec__.loader).__name__ != "_StandInLoader"
    assert type(slow_mod_for_cold_start.__loader__).__name__ != "_StandInLoader"
    handler = instrument_handler(lambda event, context: None, tracer_provider=provider)
    handler({}, FakeContext())
    handler({}, FakeContext())
    spans = memory.get_finished_spans()
    invocations = [s for s in spans if "faas.invocation_id" in s.attributes]
    load = by_name(spans)["aws.lambda.load"]
    assert load.parent.span_id == invocations[0].context.span_id
    mod = by_name(spans)["import slow_mod_for_cold_start"]
    child = by_name(spans)["import slow_child_for_cold_start"]
    assert mod.parent.span_id == load.context.span_id
    assert child.parent.span_id == mod.context.span_id
    assert mod.attributes["operation.name"] == "aws.lambda.import"
    assert not cold_start.hook_installed()
    second = invocations[1].context.span_id
    assert all(s.parent is None or s.parent.span_id != second for s in spans)


def test_settings_read_every_documented_variable():
    env = {
        "DD_TRACE_ENABLED": "true", "DD_MERGE_XRAY_TRACES": "true", "DD_SERVICE": "svc", "DD_ENV": "prod",
        "DD_VERSION": "1.2", "DD_TAGS": "team:a,tier:b", "DD_LOGS_INJECTION": "false",
        "DD_COLD_START_TRACING": "false", "DD_MIN_COLD_START_DURATION": "7",
        "DD_COLD_START_TRACE_SKIP_LIB": "a,b", "DD_TRACE_MANAGED_SERVICES": "false",
        "DD_LAMBDA_HANDLER": "app.handler", "DD_PROFILING_ENABLED": "true", "DD_FLUSH_TO_LOG": "true",
        "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000", "AWS_LAMBDA_FUNCTION_NAME": "f",
    }
    s = config.lambda_settings(env)
    assert (s.trace_enabled, s.merge_xray_traces, s.service, s.env, s.version) == (True, True, "svc", "prod", "1.2")
    assert s.tags == (("team", "a"), ("tier", "b"))
    assert (s.logs_injection, s.cold_start_tracing, s.min_cold_start_duration_ms) == (False, False, 7)
    assert s.cold_start_skip_libs == frozenset(("a", "b"))
    assert (s.managed_services, s.lambda_handler, s.profiling_enabled, s.flush_to_log) == (
        False, "app.handler", True, True)
    assert s.xray_daemon_address == "127.0.0.1:2000"
    assert config.lambda_settings({"OTEL_SERVICE_NAME": "o", "AWS_LAMBDA_FUNCTION_NAME": "f"}).service == "o"
    assert config.lambda_settings({"AWS_LAMBDA_FUNCTION_NAME": "f"}).service == "f"
    assert config.lambda_settings({"OTEL_SDK_DISABLED": "true"}).trace_enabled is False


# ---------------------------------------------------------------- payload capture


def test_payload_settings():
    s = config.lambda_settings({})
    assert (s.capture_payload, s.capture_payload_max_depth, s.span_attribute_limit_from_env) == (False, 10, False)
    s = config.lambda_settings({"DD_CAPTURE_LAMBDA_PAYLOAD": "true", "DD_CAPTURE_LAMBDA_PAYLOAD_MAX_DEPTH": "3",
                                "OTEL_ATTRIBUTE_COUNT_LIMIT": "64"})
    assert (s.capture_payload, s.capture_payload_max_depth, s.span_attribute_limit_from_env) == (True, 3, True)
    assert config.lambda_settings({"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "9"}).span_attribute_limit_from_env


def test_payload_capture_on_error_and_depth(monkeypatch):
    monkeypatch.setenv("DD_CAPTURE_LAMBDA_PAYLOAD", "true")
    monkeypatch.setenv("DD_CAPTURE_LAMBDA_PAYLOAD_MAX_DEPTH", "2")
    provider, memory = pipeline()

    def handler(event, context):
        raise KeyError("k")

    with pytest.raises(KeyError):
        instrument_handler(handler, tracer_provider=provider)({"a": {"b": {"c": 1}}, "password": "p"}, FakeContext())
    attributes = invocation_span(memory.get_finished_spans()).attributes
    # at the depth limit the rest is one string; no response (as datadog_lambda tags it)
    assert attributes["function.request.a.b"] == "{'c': 1}"
    assert attributes["function.request.password"] == "redacted"
    assert attributes["function.response"] == "None"
    assert invocation_span(memory.get_finished_spans()).status.status_code is StatusCode.ERROR


def test_payload_tags_over_a_user_providers_limit_leave_the_spans_own_attributes(monkeypatch):
    """Past its attribute count limit the SDK evicts the oldest attributes: the span's own."""
    monkeypatch.setenv("DD_CAPTURE_LAMBDA_PAYLOAD", "true")
    provider, memory = pipeline()  # the SDK's default limits: 128 attributes
    baseline_provider, baseline = pipeline()
    event = {"k%03d" % i: i for i in range(300)}
    instrument_handler(lambda e, c: {"statusCode": 200}, tracer_provider=baseline_provider)({}, FakeContext())
    instrument_handler(lambda e, c: {"statusCode": 200}, tracer_provider=provider)(event, FakeContext())
    own = dict(invocation_span(baseline.get_finished_spans()).attributes)
    span = invocation_span(memory.get_finished_spans())
    attributes = dict(span.attributes)
    assert len(attributes) == 128 and span.dropped_attributes > 0
    own.pop("function.request", None)
    for key, value in own.items():
        if key.startswith("function.") or key in ("cold_start", "faas.coldstart"):
            continue  # payload tags, and the cold start (the first of the two invocations only)
        assert attributes[key] == value, key
    assert sum(key.startswith("function.request.") for key in attributes) > 50


def test_function_attributes_follow_the_invoked_alias_and_name():
    """Worked out once per (name, ARN), and again when the invocation names another alias."""
    provider, memory = pipeline()
    handler = instrument_handler(lambda event, context: None, tracer_provider=provider)
    unqualified = "arn:aws:lambda:us-east-1:123456789012:function:my-func"
    contexts = [FakeContext(), FakeContext(arn=unqualified + ":blue"), FakeContext(arn=unqualified),
                FakeContext(arn=unqualified + ":7"), FakeContext()]
    for context in contexts:
        handler({}, context)
    spans = [s for s in memory.get_finished_spans() if "faas.invocation_id" in s.attributes]
    seen = [(s.attributes["function_version"], s.attributes["cloud.resource_id"], s.attributes["functionname"],
             s.attributes["function_arn"]) for s in spans]
    assert seen == [("prod", ARN, "my-func", unqualified), ("blue", unqualified + ":blue", "my-func", unqualified),
                    ("$LATEST", unqualified, "my-func", unqualified),
                    ("7", unqualified + ":7", "my-func", unqualified), ("prod", ARN, "my-func", unqualified)]
    # the name too is part of the key (from AWS_LAMBDA_FUNCTION_NAME, else the context's)
    assert invocation.function_attributes("Other-Func", unqualified)["functionname"] == "other-func"
    assert invocation.function_attributes("My-Func", None) == {
        "faas.name": "My-Func", "functionname": "my-func", "resource_names": "My-Func"}
