"""Span pointers on boto3 S3/DynamoDB writes, as botocore event handlers.

``before-parameter-build.<service>.<Operation>`` keeps a reference to the call's parameters in
botocore's per-request context dict; ``after-call.<service>.<Operation>`` (which sees the parsed
answer, hence the S3 ETag) computes the pointers and adds them with ``Span.add_link`` to the
current span: the client span when opentelemetry-instrumentation-botocore made one (it is
current around the call), else the caller's span. Only successful calls (HTTP status < 300).

``HANDLERS`` is the list of ``(event name, handler)`` pairs; ``botocore_hook`` registers them
with its own, so ``install_botocore_hook()`` enables pointers too. Each handler swallows its
own failures: a boto3 call never fails or changes because of them.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Tuple

from . import config
from . import span_pointers as _sp

logger = logging.getLogger("otel_dd_lambda.botocore")

_PARAMS = "otel_dd_lambda.span_pointer_params"  # our key in botocore's request context dict

# DD_BOTOCORE_DYNAMODB_TABLE_PRIMARY_KEYS parsed once per distinct value
_key_names_cache: Tuple[Optional[str], Dict[str, FrozenSet[str]]] = (None, {})


def dynamodb_key_names() -> Dict[str, FrozenSet[str]]:
    global _key_names_cache
    raw = config.dynamodb_primary_keys_json()
    cached = _key_names_cache
    if cached[0] != raw:
        cached = _key_names_cache = (raw, _sp.parse_primary_keys(raw))
    return cached[1]


def _remember_params(params: Any = None, context: Any = None, **kwargs: Any) -> None:
    if type(context) is dict and type(params) is dict:
        context[_PARAMS] = params


def record_call(service: str, operation: str, params: Any, response: Any, span: Any = None) -> int:
    """Add the pointers of one successful call to ``span`` (default: the current span).
    Returns how many were added; usable from any other hook that sees params and response."""
    if not config.add_span_pointers():
        return 0
    names = dynamodb_key_names() if service == "dynamodb" else None
    pointers = _sp.pointers_for_call(service, operation, params, response, names)
    if not pointers:
        return 0
    if span is None:
        from opentelemetry import trace

        span = trace.get_current_span()
    return _sp.add_to_span(span, pointers)


def _after_call_handler(service: str, operation: str) -> Callable[..., None]:
    def handler(http_response: Any = None, parsed: Any = None, context: Any = None, **kwargs: Any) -> None:
        try:
            status = getattr(http_response, "status_code", None)
            if type(status) is not int or status >= 300 or type(context) is not dict:
                return
            params = context.pop(_PARAMS, None)
            if type(parsed) is dict and "Error" in parsed:
                return  # S3 can answer 200 with an error document
            record_call(service, operation, params, parsed)
        except Exception:  # never break the user's AWS call
            logger.debug("span pointers for %s.%s failed", service, operation, exc_info=True)

    return handler


HANDLERS: List[Tuple[str, Callable[..., None]]] = []
for _service, _operations in (("s3", _sp.S3_OPERATIONS), ("dynamodb", _sp.DYNAMODB_OPERATIONS)):
    for _operation in _operations:
        HANDLERS.append(("before-parameter-build.%s.%s" % (_service, _operation), _remember_params))
        HANDLERS.append(("after-call.%s.%s" % (_service, _operation), _after_call_handler(_service, _operation)))
