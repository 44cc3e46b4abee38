"""Inferred spans as Datadog users see them, against datadog_lambda.

For every sample event, the Datadog span our inferred span becomes (our wrapper, then our
exporter's mapping) has the name, service, resource, type, ``peer.service`` and
``_dd.base_service`` of the one datadog_lambda's wrapper writes (run in a subprocess, its spans
read from ddtrace's log writer), with ``DD_SERVICE_MAPPING`` set and unset, ``DD_SERVICE`` set and
unset and ``DD_TRACE_AWS_SERVICE_REPRESENTATION_ENABLED`` on and off.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_dd_lambda import config
from otel_dd_lambda.exporters.mapping import SpanMapper
from otel_dd_lambda.exporters.processor import LambdaSpanProcessor
from otel_dd_lambda.ids import DatadogXRayIdGenerator
from otel_dd_lambda.runtime import cold_start
from otel_dd_lambda.runtime.configure import lambda_resource_attributes
from otel_dd_lambda.runtime.inferred import service_name
from otel_dd_lambda.runtime.wrapper import instrument_handler
from tests.support.samples import REPO, SAMPLES
from tests.support.wrapper import FakeContext

FUNCTION = "My-Func"
NAMES = sorted(p.name for p in SAMPLES.glob("*.json") if p.name != "manifest.json")
# Specific keys (an API id, a queue, a topic, a stream, a table, a bucket, a source, a host) and
# generic ones; some kinds keep no key, so the unmapped rule shows in the same run. The last
# entries are skipped by the reference's parser: three parts, an empty side, a name to itself.
MAPPING = ",".join((
    "lambda_api_gateway:gateway-generic", "1234567890:gateway-specific", "lambda_url:url-generic",
    "InferredSpansQueueNode:queue-specific", "lambda_sqs:sqs-generic", "lambda_sns:sns-generic",
    "EXAMPLE:stream-specific", "ExampleTableWithStream:table-specific", "lambda_s3:s3-generic",
    "eventbridge.custom.event.sender:bus-specific", "lambda_alb:alb-generic", "a:b:c", ":x", "same:same",
))
Summary = Optional[Tuple[Any, ...]]


def _iso(now: float, fraction: bool) -> str:
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
    return text + (".%03dZ" % (int(now * 1000) % 1000) if fraction else "Z")


def fresh(event: Any) -> Any:
    """The event as if delivered now (an older one gets no inferred span from us), in the time
    formats the reference parses."""
    event = copy.deepcopy(event)
    now = time.time()
    if not isinstance(event, dict):
        return event
    ctx = event.get("requestContext")
    if isinstance(ctx, dict):
        for key in ("requestTimeEpoch", "timeEpoch"):
            if key in ctx:
                ctx[key] = int(now * 1000)
    if "time" in event and "source" in event:
        event["time"] = _iso(now, False)
    for record in event.get("Records") or ():
        if not isinstance(record, dict):
            continue
        attributes = record.get("attributes")
        if isinstance(attributes, dict) and "SentTimestamp" in attributes:
            attributes["SentTimestamp"] = str(int(now * 1000))
        if isinstance(record.get("Sns"), dict):
            record["Sns"]["Timestamp"] = _iso(now, True)
        if isinstance(record.get("kinesis"), dict):
            record["kinesis"]["approximateArrivalTimestamp"] = now
        if isinstance(record.get("dynamodb"), dict):
            record["dynamodb"]["ApproximateCreationDateTime"] = int(now)
        if "eventTime" in record:
            record["eventTime"] = _iso(now, True)
    return event


def _summary(span: Optional[Dict[str, Any]]) -> Summary:
    if span is None:
        return None
    meta = span.get("meta") or {}
    return (span["name"], span["service"], span["resource"], span["type"], meta.get("peer.service"),
            meta.get("_dd.base_service"))


def _direct_inferred(spans: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The span the invocation span's parent is (the inferred span), if it is in the trace."""
    invocation = [s for s in spans if s["name"] == "aws.lambda"]
    if len(invocation) != 1:
        raise AssertionError("one aws.lambda span expected, got %r" % [s["name"] for s in spans])
    parents = [s for s in spans if s["span_id"] == invocation[0].get("parent_id")]
    return parents[0] if parents else None


_REFERENCE = r"""
import json, sys
from datadog_lambda.wrapper import datadog_lambda_wrapper
from tests.support.wrapper import FakeContext

@datadog_lambda_wrapper
def handler(event, context):
    return {"statusCode": 200}

for name, event in json.load(sys.stdin):
    print(json.dumps({"event": name}), flush=True)
    handler(event, FakeContext())
    sys.stdout.flush()
"""


def reference_spans(events: List[Tuple[str, Any]], env: Dict[str, str]) -> Dict[str, List[Dict[str, Any]]]:
    """datadog_lambda's spans per event, written by ddtrace's log writer (no extension: Lambda)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("DD_", "_X_AMZN", "OTEL_", "AWS_"))}
    full.update({"AWS_LAMBDA_FUNCTION_NAME": FUNCTION, "DD_FLUSH_TO_LOG": "true", "DD_COLD_START_TRACING": "false",
                 "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false", "PYTHONPATH": str(REPO)})
    full.update(env)
    done = subprocess.run([sys.executable, "-c", _REFERENCE], input=json.dumps(events), capture_output=True,
                          text=True, env=full, cwd=str(REPO), timeout=120)
    if done.returncode:
        raise RuntimeError("reference wrapper failed:\n" + done.stderr[-3000:])
    out: Dict[str, List[Dict[str, Any]]] = {}
    current = None
    for line in done.stdout.splitlines():
        if line.startswith('{"event"'):
            current = json.loads(line)["event"]
            out[current] = []
        elif line.startswith('{"traces"') and current is not None:
            out[current] += [span for chunk in json.loads(line)["traces"] for span in chunk]
    return out


def our_spans(events: List[Tuple[str, Any]]) -> Dict[str, List[Dict[str, Any]]]:
    """Our Datadog spans per event: our wrapper on a real SDK pipeline, then our exporter mapping,
    with the resource ``configure()`` builds from the same environment."""
    settings = config.lambda_settings()
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource(lambda_resource_attributes(settings)),
                              id_generator=DatadogXRayIdGenerator())
    provider.add_span_processor(LambdaSpanProcessor(exporter, background=False))
    handler = instrument_handler(lambda event, context: {"statusCode": 200}, tracer_provider=provider)
    mapper = SpanMapper()
    out = {}
    for name, event in events:
        exporter.clear()
        handler(event, FakeContext(function_name=FUNCTION))
        out[name] = [mapper.map_span(span) for span in exporter.get_finished_spans()]
    return out


def _load(name: str) -> Any:
    with open(SAMPLES / name) as handle:
        return json.load(handle)


VARIANTS = [
    pytest.param({}, id="defaults"),
    pytest.param({"DD_SERVICE": "checkout"}, id="dd-service"),
    pytest.param({"DD_SERVICE_MAPPING": MAPPING}, id="mapping"),
    pytest.param({"DD_SERVICE_MAPPING": MAPPING, "DD_SERVICE": "checkout"}, id="mapping+dd-service"),
    pytest.param({"DD_TRACE_AWS_SERVICE_REPRESENTATION_ENABLED": "false"}, id="no-representation"),
    pytest.param({"DD_TRACE_AWS_SERVICE_REPRESENTATION_ENABLED": "false", "DD_SERVICE": "checkout"},
                 id="no-representation+dd-service"),
    pytest.param({"DD_TRACE_AWS_SERVICE_REPRESENTATION_ENABLED": "false", "DD_SERVICE_MAPPING": MAPPING,
                  "DD_SERVICE": "my-func"}, id="no-representation+mapping+function-named-service"),
    pytest.param({"DD_TRACE_REMOVE_INTEGRATION_SERVICE_NAMES_ENABLED": "true", "DD_SERVICE": "checkout",
                  "DD_SERVICE_MAPPING": "lambda_sqs:sqs-generic"}, id="remove-integration-names"),
]


@pytest.fixture
def lambda_env(monkeypatch: Any) -> Any:
    for key in list(os.environ):
        if key.startswith(("DD_", "OTEL_", "_X_AMZN", "AWS_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", FUNCTION)
    monkeypatch.setenv("DD_COLD_START_TRACING", "false")
    cold_start.take_imports()
    return monkeypatch


@pytest.mark.parametrize("variant", VARIANTS)
def test_inferred_spans_are_named_and_serviced_as_datadog_lambda_does(variant: Dict[str, str],
                                                                        lambda_env: Any) -> None:
    events = [(name, fresh(_load(name))) for name in NAMES]
    reference = reference_spans(events, variant)
    for key, value in variant.items():
        lambda_env.setenv(key, value)
    ours = our_spans(events)
    expected = {name: _summary(_direct_inferred(reference[name])) for name, _ in events}
    got = {name: _summary(_direct_inferred(ours[name])) for name, _ in events}
    assert sum(1 for s in expected.values() if s is not None) >= 25  # most samples infer a span
    assert got == expected


def test_the_variants_reach_every_rule(lambda_env: Any) -> None:
    """The mapping above reaches a specific key, a generic key and no key (else the differential
    test could agree on the default rule alone)."""
    events = [(name, fresh(_load(name))) for name in NAMES]
    lambda_env.setenv("DD_SERVICE_MAPPING", MAPPING)
    services = {s[1] for s in (_summary(_direct_inferred(v)) for v in our_spans(events).values()) if s}
    assert {"gateway-specific", "gateway-generic", "queue-specific", "sqs-generic", "table-specific",
            "bus-specific", "alb-generic", "url-generic"} <= services
    assert "b:c" not in services and "x" not in services and "same" not in services


def test_service_mapping_parses_as_datadog_lambda_does() -> None:
    assert config.parse_service_mapping(" a : b ,c:d:e,f:, :g,h:h,i:j") == {"a": "b", "i": "j"}
    assert config.parse_service_mapping(None) == {}


def test_a_specific_key_wins_over_the_generic_one() -> None:
    from otel_dd_lambda.runtime.inferred import _Service

    naming = config.InferredServiceSettings({"DD_SERVICE_MAPPING": "lambda_sqs:generic,orders:specific"})
    assert service_name(naming, _Service("orders", "lambda_sqs", "orders", "sqs")) == "specific"
    assert service_name(naming, _Service("other", "lambda_sqs", "other", "sqs")) == "generic"
    plain = config.InferredServiceSettings({"DD_TRACE_AWS_SERVICE_REPRESENTATION_ENABLED": "false"})
    assert service_name(plain, _Service("orders", "lambda_sqs", "orders", "sqs")) == "sqs"
    assert service_name(plain, _Service("api", "lambda_api_gateway", "api.example.com")) is None
