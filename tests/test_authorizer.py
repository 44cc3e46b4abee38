"""An API Gateway Lambda authorizer carries its trace to the function behind the API.

Both halves together: an authorizer wrapped by ``instrument_handler`` returns a policy; its
``context`` goes into the downstream event where API Gateway puts it (REST:
``requestContext.authorizer``, HTTP API: ``requestContext.authorizer.lambda``) and the downstream
wrapped handler continues the authorizer's trace, unless the context is a cached result of another
request. datadog_lambda reads our authorizer's context alike, and we read its authorizer's.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import subprocess
import sys
import time
from typing import Any, Dict, List, Tuple

import pytest

from otel_dd_lambda.carriers import authorizer
from otel_dd_lambda.extract import extract_context
from otel_dd_lambda.runtime import cold_start
from otel_dd_lambda.runtime.wrapper import instrument_handler
from tests.support.reference import reference_extract
from tests.support.samples import REPO
from tests.support.wrapper import FakeContext, pipeline, sample

POLICY = {
    "principalId": "user-1236",
    "policyDocument": {"Version": "2012-10-17", "Statement": [
        {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "arn:aws:execute-api:*"}]},
    "context": {"scope": "read"},
}
REST, HTTP_API = "authorizer-request-api-gateway-v1.json", "authorizer-request-api-gateway-v2.json"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: Any) -> None:
    for key in list(os.environ):
        if key.startswith(("DD_", "OTEL_", "_X_AMZN")):
            monkeypatch.delenv(key)
    cold_start.take_imports()


def authorizer_event(request_id: str) -> Dict[str, Any]:
    """A REQUEST authorizer's input (API Gateway's REST shape, with its ``methodArn``)."""
    event = copy.deepcopy(sample(REST))
    event["type"] = "REQUEST"
    event["methodArn"] = "arn:aws:execute-api:eu-west-1:425362996713:amddr1rix9/dev/GET/hello"
    ctx = event["requestContext"]
    ctx.pop("authorizer", None)
    ctx["requestId"] = request_id
    ctx["requestTimeEpoch"] = int(time.time() * 1000)
    return event


def downstream_event(shape: str, context: Dict[str, Any], request_id: str, latency: int = 0) -> Dict[str, Any]:
    """The request behind the authorizer, with the authorizer's context where API Gateway puts it."""
    event = copy.deepcopy(sample(shape))
    ctx = event["requestContext"]
    ctx["requestId"] = request_id
    if shape == HTTP_API:
        ctx["timeEpoch"] = int(time.time() * 1000)
        ctx["authorizer"] = {"lambda": dict(context)}
    else:
        ctx["requestTimeEpoch"] = int(time.time() * 1000)
        ctx["authorizer"] = dict(context, principalId=POLICY["principalId"], integrationLatency=latency)
    return event


def run(handler_result: Any, event: Any) -> Tuple[Any, List[Any]]:
    provider, exporter = pipeline()
    handler = instrument_handler(lambda e, c: copy.deepcopy(handler_result), tracer_provider=provider)
    result = handler(event, FakeContext())
    return result, list(exporter.get_finished_spans())


def _root(spans: List[Any]) -> Any:
    ids = {s.context.span_id for s in spans}
    (root,) = [s for s in spans if s.parent is None or s.parent.span_id not in ids]
    return root


def _decoded(context: Dict[str, Any]) -> Dict[str, Any]:
    return json.loads(base64.b64decode(context["_datadog"]))


@pytest.mark.parametrize("shape", [REST, HTTP_API])
def test_downstream_continues_the_authorizers_trace(shape: str) -> None:
    response, auth_spans = run(POLICY, authorizer_event("req-auth-1"))
    # the span standing for API Gateway in the authorizer's trace: its inferred span
    (source,) = [s for s in auth_spans if s.name == "aws.apigateway"]
    assert response["context"]["scope"] == "read" and response["principalId"] == POLICY["principalId"]
    data = _decoded(response["context"])
    assert data[authorizer.AUTHORIZING_REQUEST_ID] == "req-auth-1"
    assert data[authorizer.PARENT_SPAN_FINISH_TIME] == source.end_time
    assert int(data["x-datadog-parent-id"]) == source.context.span_id

    event = downstream_event(shape, response["context"], "req-auth-1")
    _, spans = run({"statusCode": 200}, event)
    assert {s.context.trace_id for s in spans} == {source.context.trace_id}
    assert _root(spans).parent.span_id == source.context.span_id
    # datadog_lambda reads the same parent from our authorizer's context
    (reference,) = reference_extract([event])
    assert reference is not None
    assert (reference["trace_id"], reference["span_id"]) == (
        source.context.trace_id, source.context.span_id)


@pytest.mark.parametrize("shape", [REST, HTTP_API])
def test_a_cached_authorizer_result_of_another_request_is_not_the_parent(shape: str) -> None:
    response, auth_spans = run(POLICY, authorizer_event("req-auth-1"))
    auth_trace = auth_spans[0].context.trace_id
    event = downstream_event(shape, response["context"], "req-later-2")  # API Gateway reused the result
    _, spans = run({"statusCode": 200}, event)
    assert auth_trace not in {s.context.trace_id for s in spans}
    assert extract_context(event).parent is None
    (reference,) = reference_extract([event])
    assert reference is None or reference["trace_id"] != auth_trace


def test_integration_latency_says_the_authorizer_ran_for_this_request() -> None:
    """REST APIs report the authorizer's latency; above 0 it ran for this request, whatever the id."""
    response, auth_spans = run(POLICY, authorizer_event("req-auth-1"))
    event = downstream_event(REST, response["context"], "another-id", latency=12)
    assert extract_context(event).parent.trace_id == auth_spans[0].context.trace_id
    (reference,) = reference_extract([event])
    assert reference["trace_id"] == auth_spans[0].context.trace_id


def test_token_authorizer_without_request_id() -> None:
    """A TOKEN authorizer's input has no request id: the context names none, and only a REST
    API's integration latency lets it apply downstream."""
    token_event = {"type": "TOKEN", "authorizationToken": "secretT0k3n",
                   "methodArn": "arn:aws:execute-api:eu-west-1:425362996713:amddr1rix9/dev/GET/hello"}
    response, auth_spans = run(POLICY, token_event)
    (invocation,) = auth_spans  # no trigger: the invocation span stands for the request
    data = _decoded(response["context"])
    assert authorizer.AUTHORIZING_REQUEST_ID not in data
    assert int(data["x-datadog-parent-id"]) == invocation.context.span_id
    assert extract_context(downstream_event(REST, response["context"], "r", latency=0)).parent is None
    assert extract_context(downstream_event(REST, response["context"], "r", latency=3)).parent.span_id == \
        invocation.context.span_id


def test_http_api_simple_response_carries_the_context_too() -> None:
    """HTTP APIs accept ``{"isAuthorized": ..., "context": ...}`` (datadog_lambda encodes only IAM policies)."""
    response, auth_spans = run({"isAuthorized": True, "context": {"tenant": "t1"}}, authorizer_event("req-s"))
    (source,) = [s for s in auth_spans if s.name == "aws.apigateway"]
    assert response["context"]["tenant"] == "t1"
    event = downstream_event(HTTP_API, response["context"], "req-s")
    assert extract_context(event).parent.span_id == source.context.span_id


@pytest.mark.parametrize("result", [
    {"statusCode": 200, "body": "{}"},  # not an authorizer's answer
    dict(POLICY, context="not an object"),  # a context API Gateway would reject: left alone
    {"principalId": "", "policyDocument": {}},
])
def test_other_results_are_returned_unchanged(result: Dict[str, Any]) -> None:
    returned, _ = run(result, authorizer_event("req-x"))
    assert returned == result


def test_encoding_can_be_turned_off(monkeypatch: Any) -> None:
    monkeypatch.setenv("DD_ENCODE_AUTHORIZER_CONTEXT", "false")
    returned, _ = run(POLICY, authorizer_event("req-off"))
    assert returned == POLICY


_REFERENCE_AUTHORIZER = r"""
import json, sys
from datadog_lambda.wrapper import datadog_lambda_wrapper
from tests.support.wrapper import FakeContext

policy, event = json.load(sys.stdin)

@datadog_lambda_wrapper
def handler(event, context):
    return policy

print(json.dumps({"response": handler(event, FakeContext())}), flush=True)
"""


def test_datadog_lambdas_authorizer_context_is_continued_by_ours() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DD_", "_X_AMZN", "OTEL_", "AWS_"))}
    env.update({"AWS_LAMBDA_FUNCTION_NAME": "authorizer", "DD_FLUSH_TO_LOG": "true", "DD_COLD_START_TRACING": "false",
                "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false", "PYTHONPATH": str(REPO)})
    done = subprocess.run([sys.executable, "-c", _REFERENCE_AUTHORIZER], capture_output=True, text=True, env=env,
                          cwd=str(REPO), input=json.dumps([POLICY, authorizer_event("req-ref-1")]), timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    response = [json.loads(line) for line in lines if line.startswith('{"response"')][0]["response"]
    spans = [s for line in lines if line.startswith('{"traces"') for chunk in json.loads(line)["traces"] for s in chunk]
    (gateway,) = [s for s in spans if s["name"] == "aws.apigateway"]
    for shape in (REST, HTTP_API):
        parent = extract_context(downstream_event(shape, response["context"], "req-ref-1")).parent
        # (ddtrace's log writer writes ids in hex)
        assert parent is not None and (parent.trace_id & (2**64 - 1), parent.span_id) == (
            int(gateway["trace_id"], 16), int(gateway["span_id"], 16))
        assert extract_context(downstream_event(shape, response["context"], "req-other")).parent is None
