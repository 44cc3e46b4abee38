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
