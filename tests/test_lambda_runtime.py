"""Handlers run by the real Lambda runtime interface client (``awslambdaric``, what Lambda's managed
Python runtimes run) in a subprocess, against the Runtime API emulator of ``support.lambda_runtime``,
with spans going to a real ddapm-test-agent.

Three ways in: the decorator, the handler redirect (``otel_dd_lambda.handler.handler`` with
``DD_LAMBDA_HANDLER``) and the exec wrapper (``AWS_LAMBDA_EXEC_WRAPPER``, no change at all). Each is
compared with the same user code run by the bare runtime: results and error payloads must be the
same, init errors must name the user's module, and every invocation's span must be at the agent
before the runtime posts the invocation's response (the emulator asks the agent while it holds the
response request, before acknowledging it).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple

import pytest

from otel_dd_lambda.exec_wrapper import script_path
from tests.support.agent import TestAgent, dd_trace_id
from tests.support.functions import USER_CODE, write_task_root
from tests.support.lambda_runtime import (
    MANAGED_BOOTSTRAP,
    LambdaProcess,
    Result,
    RuntimeAPI,
)

REDIRECT = "otel_dd_lambda.handler.handler"
XRAY_ROOT = "1-5759e988-bd862e3fe1be46a994272793"
XRAY_PARENT = "53995c3f42cd8ad8"
XRAY_HEADER = "Root=%s;Parent=%s;Sampled=1" % (XRAY_ROOT, XRAY_PARENT)

def _spans(agent: TestAgent) -> List[Dict[str, Any]]:
    return [span for chunk in agent.traces(None) for span in chunk]


def invocation_spans(agent: TestAgent) -> Dict[str, Dict[str, Any]]:
    """The agent's ``aws.lambda`` spans by request id."""
    return {s["meta"]["request_id"]: s for s in _spans(agent)
            if s["name"] == "aws.lambda" and "request_id" in s.get("meta", {})}


@pytest.fixture(scope="module")
def agent(sessionless_agent: TestAgent) -> TestAgent:
    return sessionless_agent


@pytest.fixture(scope="module")
def task_root(tmp_path_factory) -> str:
    return write_task_root(tmp_path_factory.mktemp("task"), USER_CODE)


def seen_by_agent(agent: TestAgent):
    """``on_result`` hook: the request ids whose invocation span the agent holds at receipt."""
    def observe(result: Result) -> Set[str]:
        return set(invocation_spans(agent))
    return observe


def run_invocations(api: RuntimeAPI, process: LambdaProcess,
                    calls: List[Tuple[str, Dict[str, Any], Optional[str]]]) -> Dict[str, Result]:
    """Queue ``(request id, event, X-Ray header)`` one at a time; the outcomes by request id."""
    results = {}
    for request_id, event, trace_header in calls:
        try:
            results[request_id] = api.call(event, request_id=request_id, trace_id=trace_header, timeout=15)
        except AssertionError:
            raise AssertionError("no outcome for %s\nstdout:\n%s\nstderr:\n%s"
                                 % (request_id, process.stdout, process.stderr[-3000:])) from None
    return results


def make_calls(tag: str) -> List[Tuple[str, Dict[str, Any], Optional[str]]]:
    return [
        ("%s-ok-1-%s" % (tag, uuid.uuid4().hex[:8]), {"order": 1}, XRAY_HEADER),
        ("%s-reject-%s" % (tag, uuid.uuid4().hex[:8]), {"reject": 2}, None),
        ("%s-ok-2-%s" % (tag, uuid.uuid4().hex[:8]), {"order": 3, "nested": {"é": [1, 2.5, None]}}, None),
    ]


def bare_outcomes(task_root: str, calls: List[Tuple[str, Dict[str, Any], Optional[str]]]) -> Dict[str, Result]:
    """The same calls through the bare runtime and ``plain.handler``: the reference."""
    with RuntimeAPI() as api, LambdaProcess(api, task_root, "plain.handler") as process:
        return run_invocations(api, process, calls)


def check_against_bare(task_root: str, calls, results: Dict[str, Result]) -> None:
    reference = bare_outcomes(task_root, calls)
    for request_id, _, _ in calls:
        got, want = results[request_id], reference[request_id]
        assert got.kind == want.kind, (got, want)
        if want.kind == "response":
            assert got.json == want.json  # byte-for-byte the handler's result, as JSON
        else:
            # the error payload keeps the user's exception: type and message unchanged
            for key in ("errorType", "errorMessage", "requestId"):
                assert got.json[key] == want.json[key], key
            assert got.json["errorType"] == "OrderRejected"
            assert "plain.py" in "".join(got.json["stackTrace"])
            cause = json.loads(got.headers["lambda-runtime-function-xray-error-cause"])
            assert cause["exceptions"][0]["type"] == "OrderRejected"


def check_spans_before_responses(agent: TestAgent, calls, results: Dict[str, Result]) -> Dict[str, Dict[str, Any]]:
    spans = invocation_spans(agent)
    for index, (request_id, event, _) in enumerate(calls):
        # at the instant the runtime posted this invocation's outcome, its span was at the agent
        assert request_id in results[request_id].observed, (request_id, results[request_id].observed)
        span = spans[request_id]
        assert span["type"] == "serverless" and span["resource"] == "my-function"
        assert span["meta"]["cold_start"] == ("true" if index == 0 else "false")
        assert span["meta"]["function_arn"] == "arn:aws:lambda:us-east-1:123456789012:function:my-function"
        if "reject" in event:
            assert span["error"] == 1 and "OrderRejected" in span["meta"]["error.type"]
            assert span["meta"]["error.msg"].endswith("rejected: out of stock")
        else:
            assert span["error"] == 0
    return spans


def test_decorator_text_logs_xray_header_and_spans_before_responses(agent, task_root):
    calls = make_calls("deco")
    with RuntimeAPI(on_result=seen_by_agent(agent)) as api, \
            LambdaProcess(api, task_root, "decorated.handler", {"DD_TRACE_AGENT_URL": agent.url}) as process:
        results = run_invocations(api, process, calls)
        assert api.next_calls >= len(calls)  # one runtime process served them all
        process.stop()
    check_against_bare(task_root, calls, results)
    spans = check_spans_before_responses(agent, calls, results)
    # Lambda-Runtime-Trace-Id reached _X_AMZN_TRACE_ID (and was removed for calls without one)
    assert results[calls[0][0]].json["xray"] == XRAY_HEADER
    assert results[calls[2][0]].json["xray"] is None
    # without DD_MERGE_XRAY_TRACES Lambda's own segment is not the parent (as datadog_lambda)
    assert spans[calls[0][0]]["parent_id"] == 0
    # Lambda's text format, extended with the Datadog ids of the invocation span
    for request_id, _, _ in calls:
        span = spans[request_id]
        line = "\t%s\t[dd.trace_id=%s dd.span_id=%d]\thandling %s" % (
            request_id, dd_trace_id(span), span["span_id"], request_id)
        assert line in process.stdout, process.stdout


def test_redirect_json_logs_and_unchanged_results(agent, task_root):
    calls = make_calls("redirect")
    env = {"DD_TRACE_AGENT_URL": agent.url, "DD_LAMBDA_HANDLER": "plain.handler",
           "AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "INFO"}
    with RuntimeAPI(on_result=seen_by_agent(agent)) as api, \
            LambdaProcess(api, task_root, REDIRECT, env) as process:
        results = run_invocations(api, process, calls)
        process.stop()
    check_against_bare(task_root, calls, results)
    spans = check_spans_before_responses(agent, calls, results)
    records = [json.loads(line) for line in process.stdout.splitlines() if line.startswith("{")]
    handled = {r["requestId"]: r for r in records if r.get("logger") == "user"}
    for request_id, _, _ in calls:
        record = handled[request_id]
        assert record["message"] == "handling " + request_id and record["level"] == "INFO"
        assert record["dd.trace_id"] == dd_trace_id(spans[request_id])
        assert record["dd.span_id"] == str(spans[request_id]["span_id"])
    errors = [r for r in records if r.get("errorType") == "OrderRejected"]
    assert len(errors) == 1 and errors[0]["requestId"] == calls[1][0]


def test_xray_segment_is_the_parent_with_merge(agent, task_root):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as daemon:
        daemon.bind(("127.0.0.1", 0))
        daemon.settimeout(10)
        env = {"DD_TRACE_AGENT_URL": agent.url, "DD_LAMBDA_HANDLER": "plain.handler",
               "DD_MERGE_XRAY_TRACES": "true", "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:%d" % daemon.getsockname()[1]}
        request_id = "xray-" + uuid.uuid4().hex
        with RuntimeAPI(on_result=seen_by_agent(agent)) as api, \
                LambdaProcess(api, task_root, REDIRECT, env) as process:
            results = run_invocations(api, process, [(request_id, {"order": 9}, XRAY_HEADER)])
            datagram, _ = daemon.recvfrom(70_000)
    assert results[request_id].kind == "response" and results[request_id].json["xray"] == XRAY_HEADER
    assert request_id in results[request_id].observed
    span = invocation_spans(agent)[request_id]
    # the trace continues Lambda's X-Ray segment: same 128-bit id, parent = the segment
    root_hex = XRAY_ROOT[2:10] + XRAY_ROOT[11:]
    assert span["meta"]["_dd.p.tid"] + "%016x" % span["trace_id"] == root_hex
    assert span["parent_id"] == int(XRAY_PARENT, 16)
    header, _, body = datagram.partition(b"\n")
    assert json.loads(header) == {"format": "json", "version": 1}
    subsegment = json.loads(body)
    assert subsegment["trace_id"] == XRAY_ROOT and subsegment["parent_id"] == XRAY_PARENT
    assert subsegment["metadata"]["datadog"]["trace"] == {
        "trace-id": str(span["trace_id"]), "parent-id": str(int(XRAY_PARENT, 16)), "sampling-priority": "2"}


INIT_FAILURES = [
    ("missing_module.handler", "Runtime.ImportModuleError"),
    ("imports_missing.handler", "Runtime.ImportModuleError"),
    ("raises_on_import.handler", "RuntimeError"),
    ("syntax_error.handler", "Runtime.UserCodeSyntaxError"),
    ("plain.no_such_function", "Runtime.HandlerNotFound"),
    ("sys.handler", "Runtime.BuiltInModuleConflict"),
]


def _init_error(task_root: str, handler: str, env: Optional[Mapping[str, str]] = None) -> Tuple[Result, int, str]:
    with RuntimeAPI() as api, LambdaProcess(api, task_root, handler, env) as process:
        result = api.init_error(timeout=15)
        code = process.wait(15)
        return result, code, process.stdout


@pytest.mark.parametrize("user_handler,error_type", INIT_FAILURES)
def test_init_errors_name_the_users_module(task_root, user_handler, error_type):
    bare, bare_code, _ = _init_error(task_root, user_handler)
    env = {"DD_LAMBDA_HANDLER": user_handler, "DD_TRACE_AGENT_URL": "http://127.0.0.1:9"}
    ours, code, stdout = _init_error(task_root, REDIRECT, env)
    assert bare.json["errorType"] == error_type
    assert (ours.json["errorType"], ours.json["errorMessage"]) == (bare.json["errorType"], bare.json["errorMessage"])
    assert ours.headers["lambda-runtime-function-error-type"] == bare.headers["lambda-runtime-function-error-type"]
    assert "otel_dd_lambda" not in ours.json["errorMessage"]
    assert code == bare_code == 1
    assert error_type in stdout  # the runtime logged it, as it would have


def test_malformed_handler_is_reported_as_such(task_root):
    bare, _, _ = _init_error(task_root, "nodot")
    ours, code, _ = _init_error(task_root, REDIRECT, {"DD_LAMBDA_HANDLER": "nodot"})
    assert ours.json["errorType"] == bare.json["errorType"] == "Runtime.MalformedHandlerName"
    assert "'nodot'" in ours.json["errorMessage"] and code == 1


def test_exec_wrapper_traces_with_no_change(agent, task_root):
    """Lambda runs ``$AWS_LAMBDA_EXEC_WRAPPER <python> <bootstrap>`` with ``_HANDLER`` set to the
    function's handler: the user's handler, unchanged, and it is traced."""
    wrapper = script_path()
    assert os.access(wrapper, os.X_OK)
    calls = make_calls("wrapper")
    command = [wrapper, sys.executable, "-c", MANAGED_BOOTSTRAP]
    with RuntimeAPI(on_result=seen_by_agent(agent)) as api, \
            LambdaProcess(api, task_root, "plain.handler", {"DD_TRACE_AGENT_URL": agent.url,
                                                            "AWS_LAMBDA_LOG_LEVEL": "INFO"},
                          command=command) as process:
        results = run_invocations(api, process, calls)
        process.stop()
    check_against_bare(task_root, calls, results)
    spans = check_spans_before_responses(agent, calls, results)
    # text format with a log level: the runtime's other handler class, extended the same way
    for request_id, _, _ in calls:
        span = spans[request_id]
        assert "\t%s\t[dd.trace_id=%s dd.span_id=%d]\thandling %s" % (
            request_id, dd_trace_id(span), span["span_id"], request_id) in process.stdout, process.stdout


def _wrapped_env(env: Mapping[str, str]) -> Dict[str, str]:
    full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    full.update(env)
    proc = subprocess.run([script_path(), sys.executable, "-c", "import json, os; print(json.dumps(dict(os.environ)))"],
                          env=full, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("env,handler,dd_handler", [
    ({"_HANDLER": "app/main.handler"}, REDIRECT, "app/main.handler"),
    ({"_HANDLER": "app.handler", "DD_LAMBDA_HANDLER": "other.fn"}, REDIRECT, "other.fn"),  # the user's wins
    ({"_HANDLER": REDIRECT, "DD_LAMBDA_HANDLER": "app.fn"}, REDIRECT, "app.fn"),  # already redirected
    ({"_HANDLER": REDIRECT}, REDIRECT, None),  # never points the redirect at itself
    ({}, None, None),  # no handler (not a Python function): nothing to do
])
def test_exec_wrapper_environment(env, handler, dd_handler):
    seen = _wrapped_env(env)
    assert seen.get("_HANDLER") == handler and seen.get("DD_LAMBDA_HANDLER") == dd_handler


def test_exec_wrapper_keeps_arguments_and_exit_status():
    proc = subprocess.run([script_path(), sys.executable, "-c", "import sys; print(sys.argv[1:]); sys.exit(7)",
                           "two words", "", "$HOME", "*"], env={"PATH": os.environ.get("PATH", "")},
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 7 and proc.stdout.strip() == repr(["two words", "", "$HOME", "*"])


def test_exec_wrapper_path_command():
    import contextlib
    import io

    from otel_dd_lambda.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["exec-wrapper-path"]) == 0
        assert main(["exec-wrapper-path", "--root", "/opt/python"]) == 0
    local, layer = out.getvalue().split()
    assert local == script_path() and os.path.isfile(local)
    assert layer == "/opt/python/otel_dd_lambda/exec_wrapper/otel-dd-lambda-wrapper"
