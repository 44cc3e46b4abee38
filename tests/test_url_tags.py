"""URL-like tags carry no query string or fragment by default (secrets such as an OAuth ``code=``
travel there), and keep them with ``OTEL_DD_LAMBDA_KEEP_URL_QUERY=true``; path-derived values
stay within Datadog's tag limits.

Checked on the HTTP sample events (API Gateway REST / HTTP API, ALB, Function URL): the trigger
tags, the inferred spans, and the Datadog spans the exporter writes for any OTel span; and against
``datadog_lambda``, which copies the referer as it is: our only difference is the cut query.
"""

from __future__ import annotations

import copy
import time
from typing import Any, Dict

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

from otel_dd_lambda import extract_context
from otel_dd_lambda.exporters.mapping import SpanMapper
from otel_dd_lambda.limits import MAX_META_VALUE, MAX_RESOURCE, URL_TAGS, strip_url_query, url_tag
from otel_dd_lambda.runtime.inferred import inferred_span
from tests.support.reference import reference_trigger_tags_of
from tests.support.wrapper import sample

HTTP_SAMPLES = ["api-gateway.json", "http-api.json", "application-load-balancer.json",
                "application-load-balancer-multivalue-headers.json", "lambda-url.json",
                "api-gateway-v1-parametrized.json", "api-gateway-v2-parametrized.json"]
REFERER = "https://login.example.com/callback?code=SplxlOBeZQQYbYS6WxSbIA&state=xyz#access_token=abc"
SECRETS = ("code=", "state=", "access_token", "token=s3cr3t", "#frag")


class LambdaContext:
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:myfn"
    client_context = None


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ("OTEL_DD_LAMBDA_KEEP_URL_QUERY", "_X_AMZN_TRACE_ID", "DD_TRACE_EXTRACTOR"):
        monkeypatch.delenv(name, raising=False)


def _with_query(name: str) -> Dict[str, Any]:
    """The sample with a referer holding an OAuth code and a request path holding a query."""
    event = copy.deepcopy(sample(name))
    headers = event.get("headers")
    if isinstance(headers, dict) and headers:
        headers["Referer"] = REFERER
    multi = event.get("multiValueHeaders")
    if isinstance(multi, dict) and multi:
        multi["referer"] = [REFERER]
    ctx = event.get("requestContext") or {}
    for holder, key in ((event, "path"), (ctx, "path"), (ctx.get("http") or {}, "path"), (event, "rawPath")):
        if isinstance(holder.get(key), str):
            holder[key] = holder[key] + "?token=s3cr3t#frag"
    return event


def _no_secret(value: str) -> bool:
    return not any(secret in value for secret in SECRETS) and "?" not in value and "#" not in value


@pytest.mark.parametrize("name", HTTP_SAMPLES)
def test_trigger_url_tags_have_no_query_by_default(name, monkeypatch):
    tags = extract_context(_with_query(name), LambdaContext()).trigger_tags
    assert tags["http.url"] and _no_secret(tags["http.url"])
    assert tags["http.referer"] == "https://login.example.com/callback"
    monkeypatch.setenv("OTEL_DD_LAMBDA_KEEP_URL_QUERY", "true")
    kept = extract_context(_with_query(name), LambdaContext()).trigger_tags
    assert kept["http.referer"] == REFERER and kept["http.url"].endswith("?token=s3cr3t#frag")
    assert {k: strip_url_query(v) if k in URL_TAGS else v for k, v in kept.items()} == tags


def test_trigger_tags_differ_from_datadog_lambda_only_by_the_cut_query(monkeypatch):
    events = [_with_query(name) for name in HTTP_SAMPLES]
    references = reference_trigger_tags_of(events)
    for name, event, reference in zip(HTTP_SAMPLES, events, references):
        ours = extract_context(event, LambdaContext()).trigger_tags
        assert reference["http.referer"] == REFERER  # the reference copies the query (and the code)
        # our deliberate difference (README, "where we differ"): URL tags without query/fragment
        assert ours == {k: strip_url_query(v) if k in URL_TAGS else v for k, v in reference.items()}, name
        monkeypatch.setenv("OTEL_DD_LAMBDA_KEEP_URL_QUERY", "true")
        assert extract_context(event, LambdaContext()).trigger_tags == reference, name
        monkeypatch.delenv("OTEL_DD_LAMBDA_KEEP_URL_QUERY")


@pytest.mark.parametrize("name, trigger", [("api-gateway.json", "api-gateway"), ("http-api.json", "api-gateway"),
                                           ("lambda-url.json", "lambda-function-url")])
def test_inferred_span_url_has_no_query_by_default(name, trigger, monkeypatch):
    event = _with_query(name)
    ctx = event["requestContext"]
    now = time.time_ns()
    ctx["requestTimeEpoch"] = ctx["timeEpoch"] = now // 1_000_000
    extracted = extract_context(event)
    assert extracted.trigger == trigger
    span = inferred_span(extracted, now)
    assert span is not None and _no_secret(span.attributes["http.url"])
    monkeypatch.setenv("OTEL_DD_LAMBDA_KEEP_URL_QUERY", "true")
    kept = inferred_span(extracted, now)
    assert kept.attributes["http.url"].endswith("?token=s3cr3t#frag")


def test_inferred_span_bounds_huge_paths():
    event = copy.deepcopy(sample("lambda-url.json"))
    now = time.time_ns()
    event["requestContext"]["timeEpoch"] = now // 1_000_000
    event["rawPath"] = "/" + "p" * 100_000
    span = inferred_span(extract_context(event), now)
    assert len(span.attributes["http.url"]) == MAX_META_VALUE and span.attributes["http.url"].endswith("...")
    assert len(span.attributes["endpoint"]) == MAX_META_VALUE
    assert len(span.attributes["resource.name"]) == MAX_RESOURCE


def _otel_span(attributes: Dict[str, Any]) -> ReadableSpan:
    return ReadableSpan(name="GET", context=SpanContext(5, 6, False, TraceFlags(1)), kind=SpanKind.CLIENT,
                        attributes=attributes, resource=Resource.create({"service.name": "svc"}),
                        start_time=1, end_time=2)


def test_exporter_strips_url_tags_of_any_span(monkeypatch):
    presigned = "https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA&X-Amz-Signature=deadbeef"
    attributes = {"http.method": "GET", "url.full": presigned, "http.url": presigned,
                  "http.target": "/k?X-Amz-Signature=deadbeef", "http.referer": REFERER, "other": "a?b"}
    (chunk,) = SpanMapper().map_chunks([_otel_span(attributes)])
    meta = chunk[0]["meta"]
    assert meta["url.full"] == meta["http.url"] == "https://b.s3.amazonaws.com/k"
    assert meta["http.target"] == "/k" and meta["http.referer"] == "https://login.example.com/callback"
    assert meta["other"] == "a?b"  # not a URL tag: as it was
    (chunk,) = SpanMapper(keep_url_query=True).map_chunks([_otel_span(attributes)])
    assert chunk[0]["meta"]["url.full"] == presigned
    monkeypatch.setenv("OTEL_DD_LAMBDA_KEEP_URL_QUERY", "true")
    (chunk,) = SpanMapper().map_chunks([_otel_span(attributes)])
    assert chunk[0]["meta"]["http.referer"] == REFERER


def test_url_helper():
    assert strip_url_query("https://h/p?q=1#f") == "https://h/p"
    assert strip_url_query("https://h/p#f?not-a-query") == "https://h/p"
    assert strip_url_query("https://h/p") == "https://h/p"
    assert url_tag("https://h/p?q", keep_query=True) == "https://h/p?q"
    assert len(url_tag("https://h/" + "é" * 20_000).encode()) <= MAX_META_VALUE


def test_vetted_keys_still_get_url_sanitizing_namespace_drop_and_key_cut():
    """Keys vetted by an earlier span skip the key check; URL tags, ``datadog.*`` keys and long
    keys are still handled on every later span of the same mapper."""
    mapper = SpanMapper()
    long_key = "k" * 300
    first = {"http.method": "GET", "http.url": "https://h/p", "datadog.unknown": "x", long_key: "v"}
    later = {"http.method": "GET", "http.url": "https://h/p?token=secret#frag", "datadog.unknown": "x",
             long_key: "v", "url.full": "https://h/q#frag"}
    for attributes in (first, later, later):
        (chunk,) = mapper.map_chunks([_otel_span(attributes)])
        meta = chunk[0]["meta"]
        assert meta["http.url"] == "https://h/p"
        assert "datadog.unknown" not in meta
        assert long_key not in meta and any(k.startswith("kkk") and k.endswith("...") for k in meta)
        if "url.full" in attributes:
            assert meta["url.full"] == "https://h/q"
    assert "http.url" in mapper._vetted_keys and "datadog.unknown" not in mapper._vetted_keys
    assert long_key not in mapper._vetted_keys
