"""This package beside OpenTelemetry's own Lambda instrumentation, under the real runtime client
(``awslambdaric`` against the Runtime API emulator), ``opentelemetry-instrument`` and
``opentelemetry-instrumentation-aws-lambda`` 0.57b0 (left on, as OTel's layer has it), with spans
going to a real ddapm-test-agent.

Each combination of docs/otel-layer.md is run with SQS events whose ``_datadog`` attribute carries
the parent. For each: exactly one invocation span per request at the agent, continuing the
``_datadog`` context; no span id twice at the agent; the handler's log line carries the span's
``dd.trace_id``; the span is at the agent when the runtime posts the response.

The package's entry points (distro, configurator, post-instrument hook) come from this
repository's ``pyproject.toml``, written as a ``.dist-info`` on the subprocess's ``sys.path``, so
that the tests see the worktree's entry points rather than an older installed copy's.

OTel's layer is reproduced, not copied: ``layer_wrapper.py`` is what its ``otel-instrument`` script
makes the runtime load (``_HANDLER`` -> a module exposing the ``ORIG_HANDLER`` attribute, after
``opentelemetry-instrument`` has run); ``layer_direct.py`` is what its newer wrapper module does
without ``opentelemetry-instrument`` (its own provider, ``AwsLambdaInstrumentor().instrument()``,
then the handler).
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from typing import Any, Dict, List, Mapping, Tuple

import pytest
import tomllib

from otel_dd_lambda.exec_wrapper import script_path
from tests.support.agent import TestAgent, dd_trace_id
from tests.support.functions import USER_CODE, write_task_root
from tests.support.lambda_runtime import MANAGED_BOOTSTRAP, ROOT, LambdaProcess, Result, RuntimeAPI

pytest.importorskip("opentelemetry.instrumentation.aws_lambda")
pytest.importorskip("opentelemetry.distro")

INSTRUMENT = os.path.join(os.path.dirname(sys.executable), "opentelemetry-instrument")
REDIRECT = "otel_dd_lambda.handler.handler"

LAYER_CODE = {
    # what OTel's layer's otel-instrument makes the runtime load as _HANDLER
    "layer_wrapper.py": '''
        import importlib
        import os

        _module, _, _name = os.environ["ORIG_HANDLER"].rpartition(".")
        lambda_handler = getattr(importlib.import_module(_module.replace("/", ".")), _name)
    ''',
    # the layer's newer wrapper module: no opentelemetry-instrument, it sets things up itself
    "layer_direct.py": '''
        import importlib
        import os

        from opentelemetry import trace
        from opentelemetry.instrumentation.aws_lambda import AwsLambdaInstrumentor
        from opentelemetry.sdk.trace import TracerProvider

        if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            trace.set_tracer_provider(TracerProvider())
        AwsLambdaInstrumentor().instrument()
        _module, _, _name = os.environ["ORIG_HANDLER"].rpartition(".")
        lambda_handler = getattr(importlib.import_module(_module.replace("/", ".")), _name)
    ''',
}

# opentelemetry-instrument with OpenTelemetry's own distro and configurator, chosen by name so that
# the entry points' order does not matter; no OTLP (the recipe's setting)
OTEL_DISTRO = {"OTEL_PYTHON_DISTRO": "distro", "OTEL_PYTHON_CONFIGURATOR": "configurator",
               "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"}
LAYER = {"ORIG_HANDLER": "", "_HANDLER": "layer_wrapper.lambda_handler"}  # ORIG_HANDLER filled per case
BOOTSTRAP = [sys.executable, "-c", MANAGED_BOOTSTRAP]

# name -> (function handler, extra environment, command)
COMBINATIONS: Dict[str, Tuple[str, Dict[str, str], List[str]]] = {
    # (a) OTel's layer (opentelemetry-instrument, its distro) + our decorator in user code
    "a_layer_decorator": ("decorated.handler", dict(OTEL_DISTRO, **LAYER), [INSTRUMENT] + BOOTSTRAP),
    # (b) OTel's opentelemetry-instrument + our exec wrapper (the function's handler unchanged)
    "b_exec_wrapper": ("plain.handler", dict(OTEL_DISTRO), [script_path(), INSTRUMENT] + BOOTSTRAP),
    # (b') OTel's layer + our redirect as the function's handler
    "b_layer_redirect": (REDIRECT, dict(OTEL_DISTRO, DD_LAMBDA_HANDLER="plain.handler", **LAYER),
                         [INSTRUMENT] + BOOTSTRAP),
    # (c) OTEL_TRACES_EXPORTER=datadog through the SDK's configurator + configure() (the decorator)
    "c_traces_exporter_datadog": ("decorated.handler", dict(OTEL_DISTRO, OTEL_TRACES_EXPORTER="datadog", **LAYER),
                                  [INSTRUMENT] + BOOTSTRAP),
    # (d) our distro alone, the user's handler unchanged
    "d_our_distro": ("plain.handler", dict(LAYER, OTEL_PYTHON_DISTRO="otel_dd_lambda"), [INSTRUMENT] + BOOTSTRAP),
    # (e) the layer's newer wrapper module (no opentelemetry-instrument) + our decorator
    "e_direct_instrumentor": ("decorated.handler", {"ORIG_HANDLER": "", "_HANDLER": "layer_direct.lambda_handler"},
                              BOOTSTRAP),
}


def write_entry_points(target: str) -> None:
    """This repository's entry points as an installed distribution's metadata under ``target``."""
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as source:
        project = tomllib.load(source)["project"]
    info = os.path.join(target, "otel_dd_lambda_worktree-0.0.dist-info")
    os.makedirs(info, exist_ok=True)
    with open(os.path.join(info, "METADATA"), "w") as out:
        out.write("Metadata-Version: 2.1\nName: otel-dd-lambda-worktree\nVersion: 0.0\n")
    with open(os.path.join(info, "entry_points.txt"), "w") as out:
        for group, entries in project["entry-points"].items():
            out.write("[%s]\n" % group)
            out.writelines("%s = %s\n" % item for item in entries.items())
            out.write("\n")


@pytest.fixture(scope="module")
def agent(sessionless_agent: TestAgent) -> TestAgent:
    return sessionless_agent


@pytest.fixture(scope="module")
def task_root(tmp_path_factory) -> str:
    root = write_task_root(tmp_path_factory.mktemp("task"), dict(USER_CODE, **LAYER_CODE))
    write_entry_points(os.path.join(root, "site"))
    return str(root)


def _spans(agent: TestAgent) -> List[Dict[str, Any]]:
    return [span for chunk in agent.traces(None) for span in chunk]


def sqs_event(trace_id: int, parent_id: int) -> Dict[str, Any]:
    datadog = json.dumps({"x-datadog-trace-id": str(trace_id), "x-datadog-parent-id": str(parent_id),
                          "x-datadog-sampling-priority": "1"})
    return {"Records": [{
        "messageId": str(uuid.uuid4()), "receiptHandle": "handle", "body": "hello",
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1700000000000",
                       "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": "1700000000001"},
        "messageAttributes": {"_datadog": {"stringValue": datadog, "stringListValues": [], "binaryListValues": [],
                                           "dataType": "String"}},
        "md5OfBody": "5d41402abc4b2a76b9719d911017c592", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:orders", "awsRegion": "us-east-1"}]}


def invocation_spans_for(spans: List[Dict[str, Any]], request_id: str) -> List[Dict[str, Any]]:
    """Every span standing for the invocation ``request_id``: ours (``request_id``) or OTel's
    (``faas.invocation_id``)."""
    return [s for s in spans if request_id in (s.get("meta", {}).get("request_id"),
                                               s.get("meta", {}).get("faas.invocation_id"))]


def run_combination(agent: TestAgent, task_root: str, handler: str, extra: Mapping[str, str],
                    command: List[str]) -> Tuple[Dict[str, Tuple[int, int, Result]], str]:
    env = {"DD_TRACE_AGENT_URL": agent.url, "OTEL_DD_LAMBDA_EXPORT_MODE": "agent"}
    env.update(extra)
    if "ORIG_HANDLER" in env:
        env["ORIG_HANDLER"] = handler
    env["PYTHONPATH"] = os.pathsep.join((task_root, os.path.join(task_root, "site"), ROOT))
    function_handler = env.pop("_HANDLER", handler)

    def observe(result: Result) -> List[Dict[str, Any]]:
        return _spans(agent)  # what the agent holds when the runtime posts the outcome

    calls = {}
    with RuntimeAPI(on_result=observe) as api, \
            LambdaProcess(api, task_root, function_handler, env, command=command) as process:
        for _ in range(2):
            trace_id, parent_id = uuid.uuid4().int >> 65, uuid.uuid4().int >> 65
            request_id = "layer-" + uuid.uuid4().hex
            try:
                result = api.call(sqs_event(trace_id, parent_id), request_id=request_id, timeout=30)
            except AssertionError:
                raise AssertionError("no outcome\nstdout:\n%s\nstderr:\n%s"
                                     % (process.stdout[-3000:], process.stderr[-3000:])) from None
            assert result.kind == "response", (result, process.stderr[-3000:])
            calls[request_id] = (trace_id, parent_id, result)
        process.stop()
    return calls, process.stdout


def check_one_invocation_span(agent: TestAgent, calls: Mapping[str, Tuple[int, int, Result]], stdout: str) -> None:
    spans = _spans(agent)
    for request_id, (trace_id, parent_id, result) in calls.items():
        assert result.json["echo"]["Records"][0]["body"] == "hello"  # the handler's own result
        found = invocation_spans_for(spans, request_id)
        assert len(found) == 1, [(s["name"], s["trace_id"], s["parent_id"]) for s in found]
        span = found[0]
        assert span["name"] == "aws.lambda" and span["meta"]["request_id"] == request_id
        assert span["meta"]["otel.scope.name"] == "otel_dd_lambda"  # ours, not OTel's Lambda span
        assert span["meta"]["function_trigger.event_source"] == "sqs"
        # the trace is the one _datadog carried; walking up our spans ends at its parent id
        assert span["trace_id"] == trace_id
        trace = {s["span_id"]: s for s in spans if s["trace_id"] == trace_id}
        node = span
        while node["parent_id"] in trace:
            node = trace[node["parent_id"]]
        assert node["parent_id"] == parent_id
        ids = [s["span_id"] for s in spans if s["trace_id"] == trace_id]
        assert len(ids) == len(set(ids))  # nothing exported twice
        # at the instant the runtime posted the response, the span was at the agent
        assert span["span_id"] in {s["span_id"] for s in result.observed}
        line = "\t%s\t[dd.trace_id=%s dd.span_id=%d]\thandling %s" % (
            request_id, dd_trace_id(span), span["span_id"], request_id)
        assert line in stdout, stdout[-3000:]


@pytest.mark.parametrize("name", sorted(COMBINATIONS))
def test_one_invocation_span_per_combination(agent, task_root, name):
    handler, extra, command = COMBINATIONS[name]
    calls, stdout = run_combination(agent, task_root, handler, extra, command)
    check_one_invocation_span(agent, calls, stdout)


def test_otel_instrumentation_alone_is_visible_to_these_checks(agent, task_root):
    """The control: OTel's layer alone, exporting with our exporter (OTEL_TRACES_EXPORTER=datadog),
    no configure(). Its own span reaches the agent, and it does not continue ``_datadog``: what
    the checks above would catch had their span stayed beside ours."""
    extra = dict(OTEL_DISTRO, OTEL_TRACES_EXPORTER="datadog", **LAYER)
    calls, stdout = run_combination(agent, task_root, "plain.handler", extra, [INSTRUMENT] + BOOTSTRAP)
    spans = _spans(agent)
    for request_id, (trace_id, _, result) in calls.items():
        found = invocation_spans_for(spans, request_id)
        assert len(found) == 1
        assert found[0]["meta"]["otel.scope.name"] == "opentelemetry.instrumentation.aws_lambda"  # theirs
        assert found[0]["trace_id"] != trace_id
        assert found[0]["span_id"] in {s["span_id"] for s in result.observed}  # they flush too
    assert "dd.trace_id=" not in stdout  # no log correlation without this package's setup


UNNAMED = '''
import os
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from otel_dd_lambda.distro import OtelDdLambdaConfigurator, OtelDdLambdaDistro
added = []  # every processor given to a provider, through the SDK's public method
add = TracerProvider.add_span_processor
TracerProvider.add_span_processor = lambda self, processor: added.append(processor) or add(self, processor)
OtelDdLambdaDistro().configure()
OtelDdLambdaConfigurator().configure()
provider = trace.get_tracer_provider()
exporters = [type(getattr(p, "span_exporter", getattr(p, "exporter", None))).__name__ for p in added]
print(os.environ.get("OTEL_METRICS_EXPORTER"), os.environ.get("OTEL_PYTHON_CONFIGURATOR"),
      type(provider).__name__, exporters)
'''


@pytest.mark.parametrize("named,expected", [
    # picked only for coming first: OpenTelemetry's distro defaults, the SDK's configurator
    ({}, "otlp None TracerProvider ['ConsoleSpanExporter']"),
    # named: our configurator, whatever OTEL_TRACES_EXPORTER says
    ({"OTEL_PYTHON_DISTRO": "otel_dd_lambda"}, "None otel_dd_lambda TracerProvider ['DatadogSpanExporter']"),
])
def test_distro_and_configurator_act_only_when_named(named, expected):
    import subprocess

    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": ROOT, "OTEL_TRACES_EXPORTER": "console",
           "DD_TRACE_AGENT_URL": "http://127.0.0.1:9"}
    env.update(named)
    proc = subprocess.run([sys.executable, "-c", UNNAMED], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == expected, proc.stderr
