"""Shared helpers for the wrapper tests: a fake Lambda context and a real SDK pipeline."""

from __future__ import annotations

import json
import os
from typing import Any, Iterable, Iterator, List, Tuple

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_dd_lambda.exporters.processor import LambdaSpanProcessor
from otel_dd_lambda.ids import DatadogXRayIdGenerator
from otel_dd_lambda.runtime import cold_start
from tests.support.samples import SAMPLES as SAMPLES_DIR

SAMPLES = str(SAMPLES_DIR)
ARN = "arn:aws:lambda:us-east-1:123456789012:function:My-Func:prod"


class FakeContext:
    """What the Lambda runtime passes as ``context`` (the attributes handlers read)."""

    def __init__(self, remaining_ms: int = 30_000, request_id: str = "req-0001",
                 function_name: str = "My-Func", arn: str = ARN) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = arn
        self.aws_request_id = request_id
        self.memory_limit_in_mb = 128
        self.client_context = None
        self.identity = None
        self.remaining_ms = remaining_ms
        self.remaining_calls = 0

    def get_remaining_time_in_millis(self) -> int:
        self.remaining_calls += 1
        return self.remaining_ms


def pipeline(exporter: Any = None) -> Tuple[TracerProvider, Any]:
    """A provider exporting synchronously (Lambda mode) into ``exporter`` (in-memory default)."""
    exporter = exporter if exporter is not None else InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": "svc", "faas.name": "My-Func"}),
                              id_generator=DatadogXRayIdGenerator())
    provider.add_span_processor(LambdaSpanProcessor(exporter, background=False))
    return provider, exporter


def sample(name: str) -> Any:
    with open(os.path.join(SAMPLES, name)) as handle:
        return json.load(handle)


def manifest() -> Any:
    with open(os.path.join(SAMPLES, "manifest.json")) as handle:
        return json.load(handle)


def by_name(spans: List[Any]) -> dict:
    return {span.name: span for span in spans}


def fresh_sandbox(monkeypatch: Any, unset: Iterable[str]) -> Iterator[None]:
    """A new Lambda sandbox for each test: ``unset`` cleared, function "My-Func", no import timing,
    cold-start state reset (use from an autouse fixture: ``yield from fresh_sandbox(...)``)."""
    for name in unset:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "My-Func")
    monkeypatch.setenv("DD_COLD_START_TRACING", "false")
    cold_start.take_imports()
    cold_start._reset_for_tests()
    yield
    cold_start.take_imports()
