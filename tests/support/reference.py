"""Datadog's reference extraction (``datadog_lambda``), run in a subprocess: importing it applies
ddtrace's ``patch_all``, which must not leak into the process under test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any, List, Optional

_SCRIPT = r"""
import json, sys
from datadog_lambda.tracing import extract_dd_trace_context

class ClientContext:
    def __init__(self, custom):
        self.custom = custom

class Ctx:
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:myfn"
    def __init__(self, custom):
        self.client_context = ClientContext(custom) if custom else None

out = []
for event, custom in json.load(sys.stdin):
    context, source, _ = extract_dd_trace_context(event, Ctx(custom))
    if str(getattr(source, "value", source)) != "event":
        out.append(None)
    else:
        out.append({"trace_id": context.trace_id, "span_id": context.span_id,
                    "sampling_priority": context.sampling_priority, "meta": dict(context._meta)})
print(json.dumps(out))
"""


def reference_extract(events: List[Any], client_contexts: Optional[List[Any]] = None) -> List[Optional[dict]]:
    """One result per event: ``{trace_id, span_id, sampling_priority, meta}`` or None."""
    customs = client_contexts or [None] * len(events)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DD_", "_X_AMZN", "OTEL_"))}
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        input=json.dumps(list(zip(events, customs))),
        capture_output=True,
        text=True,
        env=env,
    )
    if done.returncode:
        raise RuntimeError("reference extraction failed:\n" + done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


_TRIGGER_SCRIPT = r"""
import json, sys
from datadog_lambda.trigger import extract_http_status_code_tag, extract_trigger_tags
from tests.support.wrapper import FakeContext, sample

out = {}
for name, status in json.load(sys.stdin):
    event, context = sample(name), FakeContext()
    tags = extract_trigger_tags(event, context)
    code = extract_http_status_code_tag(tags, {"statusCode": status}) if status is not None else None
    out[name] = [tags, code]
print(json.dumps(out))
"""


def reference_trigger_tags(requests: List[Any]) -> dict:
    """``datadog_lambda``'s trigger tags (and HTTP status tag) for sample files, in a subprocess.

    ``requests``: ``[(sample_name, status_code_or_None), ...]``; returns
    ``{sample_name: (tags, status_tag_or_None)}`` for ``tests.support.wrapper.FakeContext``.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DD_", "_X_AMZN", "OTEL_"))}
    done = subprocess.run(
        [sys.executable, "-c", _TRIGGER_SCRIPT],
        input=json.dumps([list(r) for r in requests]),
        capture_output=True,
        text=True,
        env=env,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    )
    if done.returncode:
        raise RuntimeError("reference trigger tags failed:\n" + done.stderr[-3000:])
    return {name: tuple(value) for name, value in json.loads(done.stdout.strip().splitlines()[-1]).items()}


_PAYLOAD_SCRIPT = r"""
import json, sys
from ddtrace.trace import tracer
from datadog_lambda.tag_object import tag_object

out = []
for prefix, payload in json.load(sys.stdin):
    span = tracer.trace("payload")
    tag_object(span, prefix, payload)
    out.append({k: v for k, v in span.get_tags().items() if k.startswith(prefix)})
    span.finish()
print(json.dumps(out))
"""


def reference_payload_tags(payloads: List[Any], max_depth: int = 10) -> List[dict]:
    """``datadog_lambda``'s payload-capture tags for ``[(prefix, payload), ...]`` (JSON values)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DD_", "_X_AMZN", "OTEL_"))}
    env.update({"DD_CAPTURE_LAMBDA_PAYLOAD_MAX_DEPTH": str(max_depth), "DD_TRACE_ENABLED": "false",
                "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false"})
    done = subprocess.run(
        [sys.executable, "-c", _PAYLOAD_SCRIPT],
        input=json.dumps([list(p) for p in payloads]),
        capture_output=True,
        text=True,
        env=env,
    )
    if done.returncode:
        raise RuntimeError("reference payload tags failed:\n" + done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


_EVENT_TRIGGER_SCRIPT = r"""
import json, sys
from datadog_lambda.trigger import extract_trigger_tags

class Ctx:
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:myfn"

print(json.dumps([extract_trigger_tags(event, Ctx()) for event in json.load(sys.stdin)]))
"""


def reference_trigger_tags_of(events: List[Any]) -> List[dict]:
    """``datadog_lambda``'s trigger tags for events given as objects (e.g. samples with a changed
    header), in a subprocess, with the ARN of ``reference_extract``'s context."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DD_", "_X_AMZN", "OTEL_"))}
    done = subprocess.run(
        [sys.executable, "-c", _EVENT_TRIGGER_SCRIPT],
        input=json.dumps(events),
        capture_output=True,
        text=True,
        env=env,
    )
    if done.returncode:
        raise RuntimeError("reference trigger tags failed:\n" + done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])
