"""configure() and the no-code-change handler, each in a fresh interpreter (they set globals)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from typing import List

import pytest

from tests.support.raw_server import RawServer
from tests.support.samples import SAMPLES

BASE_ENV = {
    "AWS_LAMBDA_FUNCTION_NAME": "my-fn", "AWS_LAMBDA_FUNCTION_VERSION": "7", "AWS_REGION": "eu-west-1",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256", "OTEL_DD_LAMBDA_EXPORT_MODE": "log",
}


# configure(), a wrapped no-op handler and a Lambda context, for the subprocess tests below
# (indented as their code is: run() dedents the whole).
_CONFIGURED_HANDLER = """
        otel_dd_lambda.configure()
        handler = otel_dd_lambda.instrument_handler(lambda e, c: None)
        class Context:
            function_name = "my-fn"; aws_request_id = "r"; memory_limit_in_mb = 256; client_context = None
            invoked_function_arn = "arn:aws:lambda:eu-west-1:1:function:my-fn"
            def get_remaining_time_in_millis(self): return 30000
"""


def run(code: str, env=None, cwd=None, args=()) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("DD_", "OTEL_", "AWS_", "_X_AMZN"))}
    full_env.update(BASE_ENV)
    full_env.update(env or {})
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [cwd, os.getcwd()]))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], env=full_env, cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def last_json(proc: subprocess.CompletedProcess):
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_configure_installs_everything_once():
    proc = run("""
        import json, otel_dd_lambda
        from opentelemetry import trace, propagate
        from opentelemetry.sdk.trace import TracerProvider
        added = []  # every processor given to a provider, through the SDK's public method
        add = TracerProvider.add_span_processor
        TracerProvider.add_span_processor = lambda self, processor: added.append(processor) or add(self, processor)
        p = otel_dd_lambda.configure()
        assert otel_dd_lambda.configure() is p and trace.get_tracer_provider() is p
        print(json.dumps({
            "resource": dict(p.resource.attributes),
            "propagator": type(propagate.get_global_textmap()).__name__,
            "ids": type(p.id_generator).__name__,
            "processors": [type(x).__name__ for x in added],
            "exporter": type(added[0].exporter).__name__,
        }))
    """, {"DD_ENV": "prod", "DD_VERSION": "1.2.3", "DD_TAGS": "team:core,tier:1", "DD_SERVICE": "checkout"})
    out = last_json(proc)
    resource = out["resource"]
    assert resource["cloud.provider"] == "aws" and resource["cloud.region"] == "eu-west-1"
    assert resource["faas.name"] == "my-fn" and resource["faas.version"] == "7"
    assert resource["faas.max_memory"] == 256 * 1024 * 1024
    assert resource["service.name"] == "checkout"
    assert resource["deployment.environment"] == "prod" and resource["service.version"] == "1.2.3"
    assert resource["team"] == "core" and resource["tier"] == "1"
    assert out["propagator"] == "DatadogCompositePropagator"
    assert out["ids"] == "DatadogXRayIdGenerator"
    assert out["processors"] == ["LambdaSpanProcessor"] and out["exporter"] == "DatadogSpanExporter"


def test_service_defaults_to_otel_name_then_function_name():
    code = "import otel_dd_lambda; print(otel_dd_lambda.configure().resource.attributes['service.name'])"
    assert run(code, {"OTEL_SERVICE_NAME": "otel-svc"}).stdout.strip() == "otel-svc"
    assert run(code).stdout.strip() == "my-fn"


def test_disabled_is_a_cheap_no_op():
    proc = run("""
        import sys, json, otel_dd_lambda
        def handler(e, c): return e
        assert otel_dd_lambda.instrument_handler(handler) is handler
        p = otel_dd_lambda.configure()
        print(json.dumps({"provider": type(p).__name__,
                          "sdk": "opentelemetry.sdk.trace" in sys.modules,
                          "exporter": "otel_dd_lambda.exporters.datadog" in sys.modules}))
    """, {"DD_TRACE_ENABLED": "false"})
    assert last_json(proc) == {"provider": "NoOpTracerProvider", "sdk": False, "exporter": False}


@pytest.mark.parametrize("mode", ["log", "agent"])
def test_init_loads_msgpack_only_for_the_agent_and_hashlib_only_for_step_functions(mode):
    # Cold start: log mode never encodes msgpack; the SHA-256 of Step Functions ids waits for
    # the first Step Functions event. Agent mode loads msgpack at init, not in the first flush.
    proc = run("""
        import sys, json, otel_dd_lambda
        otel_dd_lambda.configure()
        handler = otel_dd_lambda.instrument_handler(lambda e, c: None)
        before = {"msgpack": "msgpack" in sys.modules, "hashlib": "hashlib" in sys.modules}
        found = otel_dd_lambda.extract_context(json.loads(sys.argv[1])).parent is not None
        print(json.dumps({"before": before, "after_sfn": found and "hashlib" in sys.modules}))
    """, {"OTEL_DD_LAMBDA_EXPORT_MODE": mode, "DD_TRACE_AGENT_URL": "http://127.0.0.1:9"},
        args=[(SAMPLES / "states.json").read_text()])
    out = last_json(proc)
    assert out == {"before": {"msgpack": mode == "agent", "hashlib": False}, "after_sfn": True}


def test_mqtt_carrier_loads_on_the_first_mqtt_message():
    # Cold start: a dict event never imports the MQTT carrier; a paho-like message still extracts.
    proc = run("""
        import sys, json, otel_dd_lambda
        otel_dd_lambda.configure()
        handler = otel_dd_lambda.instrument_handler(lambda e, c: None)
        before = "otel_dd_lambda.carriers.mqtt" in sys.modules
        dict_event = otel_dd_lambda.extract_context({"headers": {}}).parent
        after_dict = "otel_dd_lambda.carriers.mqtt" in sys.modules
        class Message:
            topic = "t"
            properties = None
            payload = json.dumps({"_datadog": {"x-datadog-trace-id": "123", "x-datadog-parent-id": "456"}}).encode()
        parent = otel_dd_lambda.extract_context(Message()).parent
        print(json.dumps({"before": before, "after_dict": after_dict, "dict_parent": dict_event is None,
                          "span_id": parent.span_id, "loaded": "otel_dd_lambda.carriers.mqtt" in sys.modules}))
    """)
    assert last_json(proc) == {"before": False, "after_dict": False, "dict_parent": True, "span_id": 456,
                               "loaded": True}


def test_durable_tagging_loads_on_the_first_durable_event():
    # Cold start: an invocation of another trigger never imports runtime.durable.
    proc = run("""
        import sys, json, otel_dd_lambda
        class Ctx:
            aws_request_id = "r"; invoked_function_arn = "arn:aws:lambda:us-east-1:1:function:my-fn"
            def get_remaining_time_in_millis(self): return 5000
        handler = otel_dd_lambda.instrument_handler(lambda e, c: {"Status": "SUCCEEDED"})
        handler({"headers": {}}, Ctx())
        plain = "otel_dd_lambda.runtime.durable" in sys.modules
        arn = "arn:aws:lambda:us-east-1:1:function:my-fn:1/durable-execution/run/abc"
        handler({"DurableExecutionArn": arn, "InitialExecutionState": {"Operations": []}}, Ctx())
        print(json.dumps({"plain": plain, "durable": "otel_dd_lambda.runtime.durable" in sys.modules}))
    """, {"DD_FLUSH_TO_LOG": "true"})
    assert last_json(proc) == {"plain": False, "durable": True}
    durable_spans = [line for line in proc.stdout.splitlines() if '"aws.durable.execution_name"' in line]
    assert durable_spans and '"aws.durable.execution_status":"SUCCEEDED"' in durable_spans[-1]


def test_api_gateway_invocation_leaves_other_triggers_carrier_modules_unimported():
    # Cold start: the carrier modules of non-HTTP triggers (and of the Lambda client context and a
    # user's extractor) load with the first event that needs them, the override rules with the
    # first span that has datadog.* overrides (tests/test_exporter_overrides.py: as before). A built row holds the module's
    # own functions, is built once, and later events of every trigger read it.
    proc = run("""
        import sys, json, otel_dd_lambda
        from otel_dd_lambda import extract
        from otel_dd_lambda.carriers import triggers
        LAZY = ["sqs", "sns", "kinesis", "eventbridge", "notrace", "appsync", "mqtt", "custom", "lambda_invoke"]
        def loaded():
            return sorted(m for m in LAZY if "otel_dd_lambda.carriers." + m in sys.modules)
""" + _CONFIGURED_HANDLER + """        api = json.load(open("tests/fixtures/events/api-gateway.json"))
        api["headers"].update({"x-datadog-trace-id": "123", "x-datadog-parent-id": "456"})
        handler(api, Context())
        after_api = loaded() + ["override_rules"] * ("otel_dd_lambda.exporters.override_rules" in sys.modules)
        sqs = json.load(open("tests/fixtures/events/sqs-batch.json"))
        row = triggers.row_of("sqs")
        from otel_dd_lambda.carriers import sqs as sqs_module
        same = row is triggers.row_of("sqs") and row.record_carrier is sqs_module.record_carrier
        handler(sqs, Context())
        after_sqs = loaded()
        class Invoked(Context):
            class client_context:
                custom = {"x-datadog-trace-id": "77", "x-datadog-parent-id": "88"}
        first = extract.extract_context({}, Invoked()).parent.span_id
        from otel_dd_lambda.carriers import lambda_invoke
        rebound = extract._client_context_carrier is lambda_invoke.client_context_carrier
        second = extract.extract_context({}, Invoked()).parent.span_id
        print(json.dumps({"after_api": after_api, "after_sqs": after_sqs, "same": same, "rebound": rebound,
                          "span_ids": [first, second]}))
    """)
    assert last_json(proc) == {"after_api": [], "after_sqs": ["eventbridge", "sns", "sqs"], "same": True,
                               "rebound": True, "span_ids": [88, 88]}


def test_import_timing_loads_only_with_cold_start_tracing():
    # Cold start: the import timer's module is loaded by a function that turns the tracing on
    # (tests/test_wrapper_core.py: its spans as before), not by one that leaves it off.
    code = """
        import sys, json, otel_dd_lambda
""" + _CONFIGURED_HANDLER + """        handler({}, Context())
        print(json.dumps("otel_dd_lambda.runtime.import_timing" in sys.modules))
    """
    assert last_json(run(code, {"DD_COLD_START_TRACING": "false"})) is False
    assert last_json(run(code, {"DD_COLD_START_TRACING": "true"})) is True


def test_api_gateway_invocation_leaves_rare_exporter_paths_unimported():
    # Cold start: cutting an oversize span (exporters.shrink), span events (exporters.span_events) and
    # the v0.5 / log-mode encodings (exporters.optional_encodings) load on first use, not with an
    # agent-mode invocation on v0.4 (tests/test_span_limits.py, tests/test_exporter_mapping.py: their
    # output as before). A function in log mode loads the encodings it uses.
    code = """
        import sys, json, otel_dd_lambda
        RARE = ["shrink", "span_events", "optional_encodings"]
""" + _CONFIGURED_HANDLER + """        handler(json.load(open("tests/fixtures/events/api-gateway.json")), Context())
        print(json.dumps(sorted(m for m in RARE if "otel_dd_lambda.exporters." + m in sys.modules)))
    """
    agent = {"OTEL_DD_LAMBDA_EXPORT_MODE": "agent", "DD_TRACE_AGENT_URL": "http://127.0.0.1:9"}
    assert last_json(run(code, agent)) == []
    assert last_json(run(code, {"OTEL_DD_LAMBDA_EXPORT_MODE": "log"})) == ["optional_encodings"]


class _AgentSink(RawServer):
    """Answers every request 200 after reading it whole; keeps each request's body size."""

    def __init__(self) -> None:
        self.sizes: List[int] = []
        super().__init__()

    def _serve(self, conn: socket.socket, client_port: int) -> None:
        with conn:
            conn.settimeout(10)
            started = self.read_head(conn)
            while started is not None:
                length, body = started
                while len(body) < length:
                    body += conn.recv(65536)
                self.sizes.append(len(body))
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                started = self.read_head(conn)


def test_agent_connection_leaves_the_idna_codec_unloaded():
    # Cold start: socket.getaddrinfo() encodes a str host with the IDNA codec, whose first use
    # imports encodings.idna, stringprep and unicodedata; the agent's ASCII host goes as bytes.
    # A name and an IP literal both still resolve, and the agent gets the trace.
    code = """
        import sys, json, otel_dd_lambda
""" + _CONFIGURED_HANDLER + """        handler({}, Context())
        print(json.dumps(sorted(m for m in ("encodings.idna", "stringprep", "unicodedata") if m in sys.modules)))
    """
    for host in ("localhost", "127.0.0.1"):
        with _AgentSink() as agent:
            env = {"OTEL_DD_LAMBDA_EXPORT_MODE": "agent", "DD_TRACE_AGENT_URL": "http://%s:%d" % (host, agent.port)}
            assert last_json(run(code, env)) == [], host
        assert [size > 1 for size in agent.sizes] == [True], host  # one request: the trace, not an empty list


def test_setup_runs_with_the_collector_paused_and_gives_it_back():
    # Cold start: configure() and the wrapper's set-up (the OTel SDK's and this package's imports)
    # run with the cyclic collector paused; then what the process holds is frozen (no collection
    # walks the set-up's objects again) and the collector is on again (and collects what comes
    # after); with the collector off (the user's choice) neither happens; a failing set-up too
    # gives the collector back.
    proc = run("""
        import gc, json
        import otel_dd_lambda
        from otel_dd_lambda.runtime import configure as configure_module, wrapper as wrapper_module
        seen = {}
        def spy(name, function):
            def call(*args):
                seen[name] = gc.isenabled()
                return function(*args)
            return call
        configure_module._configure = spy("configure", configure_module._configure)
        wrapper_module._Instrumentation._set_up = spy("wrapper", wrapper_module._Instrumentation._set_up)
        provider = otel_dd_lambda.configure()
        handler = otel_dd_lambda.instrument_handler(lambda e, c: None)
        enabled_after = gc.isenabled()
        provider_frozen = gc.get_freeze_count() > 0 and all(o is not provider for o in gc.get_objects())
        collections = []
        gc.callbacks.append(lambda phase, info: collections.append(phase))
        junk = [[[] for _ in range(50)] for _ in range(400)]  # allocations: the collector runs again
        gc.unfreeze()
        gc.disable()
        configure_module._reset_for_tests()
        otel_dd_lambda.configure()
        kept_off = not gc.isenabled()
        none_frozen_when_off = gc.get_freeze_count() == 0
        gc.enable()
        configure_module._reset_for_tests()
        def broken(options):
            raise RuntimeError("set-up bug")
        configure_module._configure = broken
        failed = type(otel_dd_lambda.configure()).__name__
        print(json.dumps({"enabled_inside": seen, "enabled_after": enabled_after, "provider_frozen": provider_frozen,
                          "ran_after": bool(collections), "kept_off": kept_off,
                          "none_frozen_when_off": none_frozen_when_off, "failed": failed,
                          "enabled_after_failure": gc.isenabled()}))
    """, {"DD_TRACE_AGENT_URL": "http://127.0.0.1:9"})
    assert last_json(proc) == {"enabled_inside": {"configure": False, "wrapper": False}, "enabled_after": True,
                               "provider_frozen": True, "ran_after": True, "kept_off": True,
                               "none_frozen_when_off": True, "failed": "NoOpTracerProvider",
                               "enabled_after_failure": True}


def test_init_defers_decimal_and_unicodedata_to_their_first_use():
    # Cold start: only datadog.* float overrides (decimal) and tag values outside the agent's
    # fast path (unicodedata) need them; their first use loads them and reads as before.
    proc = run("""
        import sys, json, otel_dd_lambda
        otel_dd_lambda.configure()
        otel_dd_lambda.instrument_handler(lambda e, c: None)
        before = {m: m in sys.modules for m in ("decimal", "unicodedata")}
        from otel_dd_lambda.exporters.override_rules import go_string, normalize_tag_value
        values = [go_string(0.1), normalize_tag_value("\u00c9t\u00c9 \u0663")]
        print(json.dumps({"before": before, "values": values,
                          "after": {m: m in sys.modules for m in ("decimal", "unicodedata")}}))
    """, {"DD_TRACE_AGENT_URL": "http://127.0.0.1:9"})
    assert last_json(proc) == {"before": {"decimal": False, "unicodedata": False},
                               "values": ["0.1", "\u00e9t\u00e9_\u0663"],
                               "after": {"decimal": True, "unicodedata": True}}


def test_existing_sdk_provider_is_reused():
    proc = run("""
        import json, otel_dd_lambda
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        mine = TracerProvider(resource=Resource({"service.name": "mine"}))
        trace.set_tracer_provider(mine)
        print(json.dumps(otel_dd_lambda.configure() is mine))
    """)
    assert last_json(proc) is True


def test_flush_to_log_writes_traces_on_stdout():
    proc = run("""
        import otel_dd_lambda
        class Ctx:
            aws_request_id = "r1"; invoked_function_arn = "arn:aws:lambda:eu-west-1:1:function:my-fn"
            def get_remaining_time_in_millis(self): return 5000
        @otel_dd_lambda.instrument_handler
        def handler(event, context): return 1
        handler({}, Ctx())
    """, {"DD_FLUSH_TO_LOG": "true", "OTEL_DD_LAMBDA_EXPORT_MODE": ""})
    assert proc.returncode == 0, proc.stderr
    line = [out for out in proc.stdout.splitlines() if out.startswith('{"traces"')][-1]
    (span,) = [s for s in json.loads(line)["traces"][0] if s["name"] == "aws.lambda"]
    assert span["type"] == "serverless" and span["meta"]["request_id"] == "r1"
    assert span["meta"]["cold_start"] == "true" and span["service"] == "my-fn"


@pytest.fixture
def user_code(tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("")
    (tmp_path / "app" / "main.py").write_text("def handler(event, context):\n    return {'echo': event}\n")
    (tmp_path / "broken.py").write_text("import no_such_module_here\n")
    return str(tmp_path)


@pytest.mark.parametrize("path", ["app.main.handler", "app/main.handler"])
def test_handler_redirect_loads_and_wraps_the_user_handler(user_code, path):
    proc = run("""
        import json
        from otel_dd_lambda.handler import handler
        class Ctx:
            aws_request_id = "r1"; invoked_function_arn = "arn:aws:lambda:eu-west-1:1:function:my-fn"
            def get_remaining_time_in_millis(self): return 5000
        print(json.dumps([handler({"a": 1}, Ctx()), handler.__wrapped__.__module__]))
    """, {"DD_LAMBDA_HANDLER": path}, cwd=user_code)
    assert last_json(proc) == [{"echo": {"a": 1}}, "app.main"]


def test_handler_redirect_surfaces_the_users_import_error(user_code):
    proc = run("""
        try:
            import otel_dd_lambda.handler
        except BaseException as e:
            print(type(e).__name__, e.name if hasattr(e, "name") else "", str(e))
    """, {"DD_LAMBDA_HANDLER": "broken.handler"}, cwd=user_code)
    *logged, surfaced = proc.stdout.strip().splitlines()
    assert surfaced == "ModuleNotFoundError no_such_module_here No module named 'no_such_module_here'"
    # before it: the init error span, written for the Forwarder (no agent in this environment)
    [span] = [s for line in logged for chunk in json.loads(line)["traces"] for s in chunk]
    assert (span["name"], span["service"], span["resource"], span["error"]) == ("aws.lambda", "aws.lambda", "broken", 1)
    assert span["meta"]["error.type"] == "ModuleNotFoundError"


@pytest.mark.parametrize("env,expected", [
    ({}, "HandlerError"), ({"DD_LAMBDA_HANDLER": "nodot"}, "HandlerError"),
    ({"DD_LAMBDA_HANDLER": "app.main.missing"}, "HandlerNotFound")])
def test_handler_redirect_errors(user_code, env, expected):
    proc = run("""
        try:
            import otel_dd_lambda.handler
        except BaseException as e:
            print(type(e).__name__)
    """, env, cwd=user_code)
    *logged, surfaced = proc.stdout.strip().splitlines()
    assert surfaced == expected
    # a bad or missing function is an init error span (an unset DD_LAMBDA_HANDLER fails earlier)
    spans = [s for line in logged for chunk in json.loads(line)["traces"] for s in chunk]
    assert [s["meta"]["error.type"] for s in spans] == ([] if not env else [
        "ImportError" if expected == "HandlerError" else "AttributeError"])


def test_cold_start_tracing_through_the_redirect(user_code):
    proc = run("""
        import json
        from otel_dd_lambda.handler import handler
        class Ctx:
            aws_request_id = "r1"; invoked_function_arn = "arn:aws:lambda:eu-west-1:1:function:my-fn"
            def get_remaining_time_in_millis(self): return 5000
        handler({}, Ctx())
    """, {"DD_LAMBDA_HANDLER": "app.main.handler", "DD_MIN_COLD_START_DURATION": "0"}, cwd=user_code)
    assert proc.returncode == 0, proc.stderr
    line = [out for out in proc.stdout.splitlines() if out.startswith('{"traces"')][-1]
    spans = [s for chunk in json.loads(line)["traces"] for s in chunk]
    names = {s["name"] for s in spans}
    assert {"aws.lambda", "aws.lambda.load", "aws.lambda.import"} <= names
    assert "app.main" in {s["resource"] for s in spans if s["name"] == "aws.lambda.import"}


def test_profiling_starts_ddtraces_profiler():
    proc = run("""
        import json
        from otel_dd_lambda.runtime import profiling
        p = profiling.start_profiler()
        status = str(p.status) if p is not None else None
        assert profiling.start_profiler() is p
        profiling.stop_profiler()
        print(json.dumps([type(p).__name__, status]))
    """, {"DD_PROFILING_UPLOAD_INTERVAL": "3600", "DD_TRACE_AGENT_URL": "http://127.0.0.1:9"})
    name, status = last_json(proc)
    assert name == "Profiler" and "RUNNING" in status.upper()


_PAYLOAD_RUN = """
    import json, otel_dd_lambda
    otel_dd_lambda.configure()
    class Ctx:
        aws_request_id = "r1"; invoked_function_arn = "arn:aws:lambda:eu-west-1:1:function:my-fn"
        def get_remaining_time_in_millis(self): return 5000
    event = {"k%04d" % i: i for i in range(1500)}
    otel_dd_lambda.instrument_handler(lambda e, c: {"ok": 1})(event, Ctx())
"""


def _payload_span(env):
    proc = run(_PAYLOAD_RUN, dict({"DD_CAPTURE_LAMBDA_PAYLOAD": "true", "DD_COLD_START_TRACING": "false"}, **env))
    assert proc.returncode == 0, proc.stderr
    line = [out for out in proc.stdout.splitlines() if out.startswith('{"traces"')][-1]
    (span,) = [s for chunk in json.loads(line)["traces"] for s in chunk if s["name"] == "aws.lambda"]
    return span["meta"]


def test_configure_makes_room_for_captured_payloads():
    from otel_dd_lambda.runtime.payload import MAX_TAGS

    meta = _payload_span({})
    assert sum(key.startswith("function.request.") for key in meta) == MAX_TAGS  # payload's own cap
    assert meta["function.response.ok"] == "1"
    assert meta["request_id"] == "r1" and meta["function_arn"] == "arn:aws:lambda:eu-west-1:1:function:my-fn"


@pytest.mark.parametrize("variable", ["OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "OTEL_ATTRIBUTE_COUNT_LIMIT"])
def test_a_users_attribute_limit_is_kept_and_the_spans_own_tags_survive_it(variable):
    meta = _payload_span({variable: "200"})
    captured = [key for key in meta if key.startswith("function.")]
    assert 100 < len(captured) < 200
    assert meta["request_id"] == "r1" and meta["function_arn"] == "arn:aws:lambda:eu-west-1:1:function:my-fn"


def test_botocore_hook_waits_for_botocore_and_then_injects():
    proc = run("""
        import json, sys, otel_dd_lambda
        otel_dd_lambda.configure()
        before = "botocore" in sys.modules
        import boto3
        from otel_dd_lambda import botocore_hook
        print(json.dumps([before, botocore_hook.hook_installed(),
                          [type(f).__name__ for f in sys.meta_path if type(f).__name__ == "_PostImportHook"]]))
    """)
    # botocore is never imported by configure(); the hook goes in once it is, then leaves sys.meta_path
    assert last_json(proc) == [False, True, []]
