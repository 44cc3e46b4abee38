"""Datadog's ``datadog.*`` override attributes, applied as the Datadog Agent's OTLP ingest applies them.

A span (or its resource) may carry ``datadog.service``, ``datadog.name``, ``datadog.resource``,
``datadog.type``, ``datadog.span.kind``, ``datadog.env``, ``datadog.version``,
``datadog.http_status_code``, ``datadog.error`` and ``datadog.error.msg`` / ``.type`` / ``.stack``.
The rules below are the agent's default OTLP path (facts read from DataDog/datadog-agent,
pkg/trace/transform/transform.go: ``otelSpanToDDSpanMinimalOld``, ``otelSpanToDDSpanOld``,
``copyAttrToMapIfExists``, ``GetOTelStatusCode``, ``Status2Error``, ``GetDDKeyForOTLPAttribute``;
pkg/trace/traceutil: ``GetOTelAttrFromEitherMap``; pkg/trace/traceutil/normalize:
``NormalizeTagValue``; pdata's ``Value.AsString``):

* service / name / resource / type / ``span.kind``: the span's value, else the resource's, as a
  string of any type, normalized as a tag value; an empty result falls through to the derived one.
* ``env``, ``version``, ``http.status_code``, ``error.msg``/``type``/``stack`` meta: the value as a
  string (not normalized); the resource's value is copied after the span's, so it wins.
* ``http.status_code`` metric: ``datadog.http_status_code`` of the span, else of the resource,
  read as an int (any other type reads 0) and wrapped to uint32; 0 leaves the derived metric.
* error flag: ``datadog.error`` of the span only, read as an int (any other type, bool included,
  reads 0) and wrapped to int32 -- but only when error.msg, error.type and error.stack are all
  set by then (overrides or string span attributes). Otherwise the flag follows the status, and
  on an ERROR status an exception event's message/type/stacktrace replace the overrides.
* Every ``datadog.*`` attribute (known or not, span or resource) is dropped from the tags.

The keys and the test for them are here; the conversions and rules (``override_rules``) load with
the first span that has overrides: most functions never set one, and code costs cold-start time and
memory. A span without ``datadog.*`` keys never gets there: mapping.py's fast-path test already
covers the known keys, and its key check drops unknown ``datadog.*`` tags (see ``is_override_key``).
"""

from __future__ import annotations

from typing import Any, Dict, FrozenSet, Mapping, Optional, Sequence, Tuple

PREFIX = "datadog."

# (attribute, span field), read span first then resource, normalized
FIELDS: Tuple[Tuple[str, str], ...] = (
    ("datadog.service", "service"),
    ("datadog.name", "name"),
    ("datadog.resource", "resource"),
    ("datadog.type", "type"),
)
SPAN_KIND = "datadog.span.kind"
# (attribute, meta key), copied span then resource, not normalized
META: Tuple[Tuple[str, str], ...] = (
    ("datadog.env", "env"),
    ("datadog.version", "version"),
    ("datadog.http_status_code", "http.status_code"),
    ("datadog.error.msg", "error.msg"),
    ("datadog.error.type", "error.type"),
    ("datadog.error.stack", "error.stack"),
)
ERROR = "datadog.error"
STATUS_CODE = "datadog.http_status_code"

# The attributes that change a mapped span: mapping.py adds them to its slow-path key set.
OVERRIDE_KEYS: FrozenSet[str] = frozenset(
    [key for key, _ in FIELDS] + [key for key, _ in META] + [SPAN_KIND, ERROR])


def is_override_key(key: str) -> bool:
    """Whether a tag key is in Datadog's namespace (the agent keeps none of them as tags)."""
    return key.startswith(PREFIX)


def resource_overrides(attributes: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    """The resource's override attributes (computed once per resource), or None."""
    found = {k: v for k, v in attributes.items() if k in OVERRIDE_KEYS}
    return found or None


def apply_overrides(dd_span: Dict[str, Any], attributes: Mapping[str, Any],
                    resource: Optional[Mapping[str, Any]], status_is_error: bool, events: Sequence[Any]) -> None:
    """Apply the override attributes of a span and its resource to the mapped ``dd_span``
    (``override_rules.apply``: that module loads with the first span that has overrides)."""
    from .override_rules import apply

    apply(dd_span, attributes, resource, status_is_error, events)
