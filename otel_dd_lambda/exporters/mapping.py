"""OTel ``ReadableSpan`` -> Datadog span dict (the v0.4 map), grouped into trace chunks.

The rules follow Datadog's own OTLP ingest so that a trace looks the same whether it reaches
Datadog through this exporter or through an OTel collector / the agent's OTLP receiver:

* service: ``service.name`` (span attribute, then resource; an SDK default ``unknown_service``
  gives way to ``DD_SERVICE``, then ``faas.name``)
* name: ``operation.name``, else from semantic conventions (``http.server.request``,
  ``<db.system>.query``, ``<messaging.system>.<operation>``, ``aws.<service>.request``, ...),
  else the span kind
* resource: ``resource.name``, else ``<method> <route>``, messaging operation + destination, rpc
  method + service, the database statement, else the span name
* type: ``span.type``, else ``web`` (SERVER), ``http`` / database kind (CLIENT), ``custom``
* string/bool/sequence attributes -> ``meta``; numbers -> ``metrics``; plus ``span.kind``,
  ``otel.status_code``, ``otel.scope.name``/``version``, ``env``, ``version`` on every span.
  Resource attributes (as string tags, like the agent) and ``otel.trace_id`` go on the first span
  and the local roots of each chunk, as ddtrace does with process-level tags.

The Lambda invocation span (the one carrying ``faas.invocation_id``) follows Datadog's
serverless conventions: ``aws.lambda`` / ``serverless`` / resource = function name, with
``request_id``, ``cold_start``, ``function_arn`` and ``_dd.origin=lambda``.

Chunk-level data (``_dd.p.tid``, ``_sampling_priority_v1``, ``_dd.origin``, ``_dd.p.*``,
``_dd.parent_id``) comes from the trace id and the ``dd=`` member of the W3C tracestate.

This is the exporter's hot path: per-resource and per-scope data is computed once, and a span
without semantic-convention keys goes through a fast path of a few dict operations.
"""

from __future__ import annotations

import json
import logging
import operator
import time
from typing import TYPE_CHECKING, Any, Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import SpanContext, SpanKind, StatusCode

from otel_dd_lambda import config
from otel_dd_lambda.exporters.overrides import (
    OVERRIDE_KEYS,
    apply_overrides,
    is_override_key,
    resource_overrides,
)
from otel_dd_lambda.limits import (
    ELLIPSIS,
    MAX_META_KEY,
    MAX_META_VALUE,
    MAX_METRIC_KEY,
    MAX_RESOURCE,
    URL_TAGS,
    strip_url_query,
    truncate_utf8,
)
from otel_dd_lambda.propagators.ddstate import DDState, parse_dd_member, sampling_priority
from otel_dd_lambda.propagators.precedence import FAST_SPAN_CONTEXT

logger = logging.getLogger(__name__)

DDSpan = Dict[str, Any]
Chunk = List[DDSpan]

_LOW64 = (1 << 64) - 1
_INT_MIN = -(1 << 63)
_INT_MAX = (1 << 64) - 1
_FLAGS_SET = 1 << 31  # span link "flags" bit 31: the flags field is meaningful
MAX_RESOURCE_LEN = MAX_RESOURCE  # Datadog truncates longer resource names (UTF-8 bytes)
# A str of at most this many characters is within the limit whatever its characters (<= 4 bytes
# each): the bounding pass only encodes the rare longer ones.
_SAFE_VALUE_CHARS = MAX_META_VALUE // 4
_SAFE_KEY_CHARS = MAX_META_KEY // 4
_SAFE_RESOURCE_CHARS = MAX_RESOURCE // 4

_KIND_NAMES = {
    SpanKind.INTERNAL: "internal",
    SpanKind.SERVER: "server",
    SpanKind.CLIENT: "client",
    SpanKind.PRODUCER: "producer",
    SpanKind.CONSUMER: "consumer",
}
_STATUS_NAMES = {StatusCode.UNSET: "Unset", StatusCode.OK: "Ok", StatusCode.ERROR: "Error"}
_ERROR = StatusCode.ERROR
_NOTHING = object()

# ---------------------------------------------------------------- reading OTel SDK spans
# The one place that knows the SDK's private layout. bench_exporter.py's map + encode takes
# 2.5x as long through the public properties: each costs ~50 ns, ``.attributes`` wraps the
# dict in a MappingProxyType that iterates through Python-level methods, ``.events`` copies the
# list, and ``len()`` of a BoundedList is Python-level. The layout is checked once, at import;
# on an SDK whose layout differs every span is read through its public properties.

_SPAN_FIELDS = ("_context", "_parent", "_name", "_kind", "_status", "_start_time", "_end_time", "_attributes",
                "_events", "_links", "_resource", "_instrumentation_scope")

if TYPE_CHECKING:  # annotations only: subscripting typing generics at import costs cold-start time
    # (trace_id, span_id, parent_id, is_local_root, name, kind, status, start, end, attributes,
    #  events, links, resource, scope)
    SpanParts = Tuple[int, int, int, bool, str, Any, Any, int, int, Mapping[str, Any], Sequence[Any], Sequence[Any],
                      Any, Any]


def _sdk_span_types() -> FrozenSet[type]:
    """The SDK span classes whose fields ``_span_parts`` may read directly (exact types: a
    subclass may override the properties), or none when this SDK's layout is not the known one."""
    # an explicit empty resource: the default one runs the resource detectors (an entry-point
    # scan, ~10 ms of every cold start)
    probe = sdk_trace.ReadableSpan(name="probe", context=SpanContext(1, 2, False), resource=Resource.get_empty())
    known = (
        all(field in probe.__dict__ for field in _SPAN_FIELDS)
        and isinstance(getattr(BoundedAttributes(), "_dict", None), dict)
        and hasattr(BoundedList(1), "_dq")
        and FAST_SPAN_CONTEXT  # SpanContext is the tuple (trace_id, span_id, is_remote, flags, state, ...)
    )
    if not known:
        return frozenset()
    return frozenset(t for t in (getattr(sdk_trace, "ReadableSpan", None), getattr(sdk_trace, "_Span", None),
                                 getattr(sdk_trace, "Span", None)) if isinstance(t, type))


_SDK_SPAN_TYPES = _sdk_span_types()
# A BoundedList's deque (its len() is C-level, the list's is not); the SDK's type stub omits it.
_deque_of = operator.attrgetter("_dq")


def _span_parts(span: Any) -> SpanParts:
    """What the mapping needs of a span, read once."""
    if type(span) in _SDK_SPAN_TYPES:
        fields = span.__dict__
        context = fields["_context"]
        parent = fields["_parent"]
        start = fields["_start_time"] or 0
        raw = fields["_attributes"]
        events = fields["_events"]
        links = fields["_links"]
        if parent is None:
            parent_id, is_root = 0, True
        else:
            parent_id, is_root = parent[1], parent[2]  # a remote parent: this span is the local root
        return (context[0], context[1], parent_id, is_root, fields["_name"], fields["_kind"], fields["_status"],
                start, fields["_end_time"] or start,
                raw._dict if type(raw) is BoundedAttributes else _plain_dict(raw),
                _deque_of(events) if type(events) is BoundedList else events,
                _deque_of(links) if type(links) is BoundedList else links,
                fields["_resource"], fields["_instrumentation_scope"])
    return _public_span_parts(span)


def _public_span_parts(span: Any) -> SpanParts:
    """``_span_parts`` through the public API (any ``ReadableSpan``, or an SDK of another layout)."""
    context = span.context
    parent = span.parent
    start = span.start_time or 0
    if parent is None:
        parent_id, is_root = 0, True
    else:
        parent_id, is_root = parent.span_id, parent.is_remote
    return (context.trace_id, context.span_id, parent_id, is_root, span.name, span.kind, span.status,
            start, span.end_time or start, _plain_dict(span.attributes), span.events, span.links,
            span.resource, span.instrumentation_scope)


def _plain_dict(attributes: Any) -> Mapping[str, Any]:
    """The attributes as a plain dict, without copying when possible.

    The SDK's BoundedAttributes keeps a dict inside (read directly: iterating the Mapping is
    several times slower); any other mapping is copied.
    """
    if attributes is None:
        return {}
    if type(attributes) is dict:
        return attributes
    inner = getattr(attributes, "_dict", None)
    if type(inner) is dict:
        return inner
    try:
        return dict(attributes)
    except Exception:  # a broken mapping must not break the export
        return {}


# attributes that set span fields and are not repeated as tags (as in Datadog's OTLP ingest)
_DD_CONVENTION_KEYS = frozenset(("service.name", "operation.name", "resource.name", "span.type"))
_NAMING_KEYS = _DD_CONVENTION_KEYS - {"service.name"}  # name, resource and type, when set by the span
_SERVER = SpanKind.SERVER
_CLIENT = SpanKind.CLIENT

# Attribute keys that change name/resource/type. A span holding none of them (the common
# internal span) skips every semantic-convention lookup.
_SEMANTIC_KEYS = frozenset(
    (
        "operation.name",
        "resource.name",
        "span.type",
        "http.request.method",
        "http.method",
        "db.system",
        "db.system.name",
        "messaging.system",
        "messaging.operation",
        "rpc.system",
        "rpc.method",
        "faas.trigger",
        "faas.invoked_provider",
        "graphql.operation.type",
        "network.protocol.name",
        # read only once one of the keys above is present, but copied along with them
        "http.route",
        "db.statement",
        "db.query.text",
        "messaging.destination",
        "messaging.destination.name",
        "rpc.service",
        "faas.invoked_name",
        "graphql.operation.name",
    )
)

# a span holding none of these (and whose resource holds no semantic or override key) takes the
# fast path; Datadog's ``datadog.*`` overrides ride on the same test, so they cost nothing when absent
_SPECIAL_KEYS = _SEMANTIC_KEYS | frozenset(("service.name", "faas.invocation_id")) | OVERRIDE_KEYS

_SQL_SYSTEMS = frozenset(
    (
        "adabas", "cache", "clickhouse", "cloudscape", "cockroachdb", "coldfusion", "db2",
        "derby", "edb", "firebird", "firstsql", "filemaker", "h2", "hanadb", "hsqldb",
        "informix", "ingres", "instantdb", "interbase", "mariadb", "maxdb", "mssql",
        "mysql", "netezza", "oracle", "other_sql", "pervasive", "pointbase", "postgresql",
        "progress", "redshift", "sqlite", "sybase", "teradata", "trino", "vertica",
    )
)
_DB_TYPES = {
    "redis": "redis",
    "memcached": "memcached",
    "mongodb": "mongodb",
    "elasticsearch": "elasticsearch",
    "opensearch": "opensearch",
    "cassandra": "cassandra",
}


def _db_type(system: str) -> str:
    if system in _SQL_SYSTEMS:
        return "sql"
    return _DB_TYPES.get(system, "db")


def fix_big_ints(chunks: List[Chunk]) -> None:
    """Turn metrics ints outside int64/uint64 (which msgpack refuses) into floats, in place."""
    for chunk in chunks:
        for span in chunk:
            metrics = span.get("metrics")
            if metrics:
                for key, value in metrics.items():
                    if type(value) is int and not _INT_MIN <= value <= _INT_MAX:
                        metrics[key] = float(value)


def _add_chunk_meta(dd_span: DDSpan, chunk_meta: Dict[str, str], full_id: str) -> None:
    """Resource tags (below the span's own) and otel.trace_id on a chunk head or local root."""
    meta = dd_span["meta"]
    if chunk_meta:
        merged = chunk_meta.copy()
        merged.update(meta)  # the span's own tags win
        dd_span["meta"] = meta = merged
    meta["otel.trace_id"] = full_id


def _to_str(value: Any) -> str:
    """A non-str attribute value as Datadog's OTLP ingest writes it in ``meta``."""
    if type(value) is bool:
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        try:
            return json.dumps(list(value), separators=(",", ":"), ensure_ascii=False)
        except Exception:
            return str(list(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


class _ResourceInfo:
    """What a span takes from its resource; computed once per Resource object."""

    __slots__ = ("resource", "service", "meta", "chunk_meta", "metrics", "semantic", "faas_name",
                 "function_arn", "overrides")

    def __init__(self, resource: Any, default_service: Optional[str], env: Optional[str],
                 version: Optional[str]) -> None:
        self.resource = resource  # keeps the object alive so its id() stays unique in the cache
        attributes = _plain_dict(getattr(resource, "attributes", None))
        # as the agent does: every resource attribute as a string tag, except the Datadog
        # conventions (service.name, ...) that become span fields
        meta: Dict[str, str] = {
            k: (v if type(v) is str else _to_str(v))
            for k, v in attributes.items()
            if k not in _DD_CONVENTION_KEYS and not is_override_key(k)
        }
        metrics: Dict[str, Any] = {}
        service = attributes.get("service.name")
        service = service if type(service) is str and service else None
        faas_name = attributes.get("faas.name")
        self.faas_name = faas_name if type(faas_name) is str and faas_name else None
        if service is None or service.startswith("unknown_service"):
            service = default_service or self.faas_name or service or "otlpresourcenoservicename"
        self.service: str = service
        env_value = attributes.get("deployment.environment.name") or attributes.get(
            "deployment.environment"
        )
        env_value = _to_str(env_value) if env_value else env
        if env_value:
            meta["env"] = env_value
        version_value = attributes.get("service.version")
        version_value = _to_str(version_value) if version_value else version
        if version_value:
            meta["version"] = version_value
        arn = attributes.get("cloud.resource_id")
        self.function_arn = arn if type(arn) is str and arn else None
        # Every span gets env and version; the other resource attributes describe the process
        # (telemetry.sdk.*, cloud.*, faas.*, host.*...) and go on the first span and the local
        # roots of each chunk, as ddtrace does with process tags and datadog_lambda with the
        # function tags: a third of the payload and of the mapping time otherwise.
        self.meta: Dict[str, str] = {k: meta.pop(k) for k in ("env", "version") if k in meta}
        self.chunk_meta = meta
        self.metrics = metrics
        # only the semantic keys of the resource, so span lookups can skip it when empty
        self.semantic = {k: v for k, v in attributes.items() if k in _SEMANTIC_KEYS}
        self.overrides = resource_overrides(attributes)  # datadog.* keys, applied to each span


class SpanMapper:
    """Maps ReadableSpans to Datadog v0.4 span dicts; safe to share between threads."""

    def __init__(
        self,
        service: Optional[str] = None,
        env: Optional[str] = None,
        version: Optional[str] = None,
        native_span_events: bool = False,
        keep_url_query: Optional[bool] = None,
        settings: Optional[config.ExporterSettings] = None,
    ) -> None:
        if settings is None:
            settings = config.exporter_settings()
        self._service = service or settings.service
        self._env = env or settings.env
        self._version = version or settings.version
        self.native_span_events = native_span_events
        self._resources: Dict[int, _ResourceInfo] = {}
        self._scopes: Dict[int, Tuple[Any, Dict[str, str]]] = {}
        self._states: Dict[str, Optional[DDState]] = {}
        self._bases: Dict[Tuple[int, int, int, int], _Base] = {}
        # the last two (resource, scope, kind, status, base) seen: a flush's spans alternate
        # between two bases (the invocation span and its inferred parent differ in status or kind)
        self._last: Tuple[Any, ...] = (_NOTHING, _NOTHING, _NOTHING, _NOTHING, None)
        self._previous: Tuple[Any, ...] = self._last
        self._last_dd_state: Tuple[Any, Optional[DDState]] = (_NOTHING, None)  # (trace_state, its DDState)
        self.unmappable = 0  # spans that could not be read (dropped, logged once)
        self._strip_urls = not (settings.keep_url_query if keep_url_query is None else keep_url_query)
        self.limits = LimitLog()  # what Datadog's size limits cost, counted and logged
        # tag keys seen short and outside the datadog.* namespace: nothing to check in them again
        self._vetted_keys: set = set()

    # ------------------------------------------------------------ caches

    def _resource_info(self, resource: Any) -> _ResourceInfo:
        info = self._resources.get(id(resource))
        if info is None or info.resource is not resource:
            if len(self._resources) > 64:  # resources are few; a churning caller gets no leak
                self._resources.clear()
            info = _ResourceInfo(resource, self._service, self._env, self._version)
            self._resources[id(resource)] = info
        return info

    def _scope_meta(self, scope: Any) -> Dict[str, str]:
        entry = self._scopes.get(id(scope))
        if entry is None or entry[0] is not scope:
            meta: Dict[str, str] = {}
            if scope is not None:
                if scope.name:
                    meta["otel.scope.name"] = scope.name
                if scope.version:
                    meta["otel.scope.version"] = scope.version
            if len(self._scopes) > 256:
                self._scopes.clear()
            entry = (scope, meta)
            self._scopes[id(scope)] = entry
        return entry[1]

    def _dd_state(self, trace_state: Any) -> Optional[DDState]:
        last = self._last_dd_state  # a local root's context and its parent share one TraceState
        if last[0] is trace_state:
            return last[1]
        value = trace_state.get("dd") if trace_state else None
        if not value:
            state = None
        else:
            states = self._states
            state = states.get(value)
            if state is None:
                if len(states) > 256:
                    states.clear()
                state = states[value] = parse_dd_member(value)
        self._last_dd_state = (trace_state, state)  # one atomic store
        return state

    # ------------------------------------------------------------ mapping

    def _base(self, resource_obj: Any, scope: Any, kind: Any, status_code: Any) -> "_Base":
        """Everything a span shares with its (resource, scope, kind, status) siblings, built once.

        Keyed by ids: the enum members are singletons, and the entry keeps the resource and
        scope alive and checks them by identity, so an id is never mistaken for a reused one.
        """
        key = (id(resource_obj), id(scope), id(kind), id(status_code))
        base = self._bases.get(key)
        if base is None or base.resource_obj is not resource_obj or base.scope is not scope:
            if len(self._bases) > 512:
                self._bases.clear()
            base = self._bases[key] = _Base(
                resource_obj, scope, self._resource_info(resource_obj), self._scope_meta(scope),
                kind, status_code)
        return base

    def map_chunks(self, spans: Sequence[Any]) -> List[Chunk]:
        """Map spans and group them into trace chunks (one per trace id, in arrival order)."""
        chunks: Dict[int, Chunk] = {}
        heads: Dict[int, _Base] = {}  # the base of each chunk's first span
        roots: Dict[int, List[Tuple[DDSpan, Any, _Base]]] = {}
        map_span = self._map_span
        for span in spans:
            try:
                dd_span, trace_id, is_root, base = map_span(span)
            except Exception:  # one malformed span must not lose the others
                self.unmappable += 1
                if self.unmappable == 1:
                    logger.warning("could not map a span to Datadog's format: dropped", exc_info=True)
                continue
            chunk = chunks.get(trace_id)
            if chunk is None:
                chunks[trace_id] = [dd_span]
                heads[trace_id] = base
            else:
                chunk.append(dd_span)
            if is_root:
                root_list = roots.get(trace_id)
                if root_list is None:
                    roots[trace_id] = [(dd_span, span, base)]
                else:
                    root_list.append((dd_span, span, base))
        # Datadog's limits, in three steps each sized to what is new: keys not vetted before
        # (rare after the first invocation), URL tags present (a set intersection), and values
        # or a resource long enough to possibly exceed a limit
        vetted = self._vetted_keys.issuperset
        strip_urls = self._strip_urls
        for trace_id, chunk in chunks.items():
            self._tag_chunk(trace_id, chunk, heads[trace_id], roots.get(trace_id))
            for dd_span in chunk:
                meta = dd_span["meta"]
                metrics = dd_span["metrics"]
                if not (vetted(meta) and vetted(metrics)):
                    self._check_keys(meta, metrics)
                if strip_urls and not URL_TAGS.isdisjoint(meta):
                    _strip_url_tags(meta)
                if len("".join(meta.values())) > _SAFE_VALUE_CHARS or \
                        len(dd_span["resource"]) > _SAFE_RESOURCE_CHARS:
                    self._bound_values(dd_span)
        self.limits.report()
        return list(chunks.values())

    def _bound_values(self, dd_span: DDSpan) -> None:
        """Values and resource of a mapped span cut to the agent's limits (after every tag is set);
        ``map_chunks`` calls it only when they sum to more characters than one value may take, or
        for a long resource. A value is cut on a character boundary with "...", the resource
        without marker."""
        meta = dd_span["meta"]
        if meta and len("".join(meta.values())) > _SAFE_VALUE_CHARS:
            cut = _bound_strings(meta, MAX_META_KEY, MAX_META_VALUE)
            if cut:
                self.limits.note("tag", cut)
        resource = dd_span["resource"]
        if len(resource) > _SAFE_RESOURCE_CHARS:
            bounded = truncate_utf8(resource, MAX_RESOURCE)
            if bounded is not resource:
                dd_span["resource"] = bounded
                self.limits.note("resource")

    def _check_keys(self, meta: Dict[str, Any], metrics: Dict[str, Any]) -> None:
        """The keys of a span not vetted before: a ``datadog.*`` key no rule read is dropped (the
        agent keeps none as a tag), a key possibly over the limit is cut; every other key is
        vetted, so later spans carrying it skip this."""
        vetted = self._vetted_keys
        if len(vetted) > 4096:  # a caller minting keys without end gets no leak
            vetted.clear()
        for tags, key_limit, value_limit in ((meta, MAX_META_KEY, MAX_META_VALUE),
                                             (metrics, MAX_METRIC_KEY, None)):
            long_keys = False
            for key in [k for k in tags if k not in vetted]:
                if is_override_key(key):
                    del tags[key]  # never vetted: it comes back here each time
                elif len(key) > _SAFE_KEY_CHARS:
                    long_keys = True
                else:
                    vetted.add(key)
            if long_keys:
                cut = _bound_strings(tags, key_limit, value_limit)
                if cut:
                    self.limits.note("tag", cut)

    def _tag_chunk(self, trace_id: int, chunk: Chunk, head_base: "_Base",
                   roots: Optional[List[Tuple[DDSpan, Any, "_Base"]]]) -> None:
        """Chunk-level tags: on the head, ``_dd.p.tid``; on each local root (or the head of a
        partial chunk), resource tags, sampling priority, ``_dd.p.*`` and ``_dd.parent_id``;
        ``_dd.origin`` on every span when the propagated state names one."""
        full_id = "%032x" % trace_id  # the agent's otel.trace_id: the whole 128-bit id
        head = chunk[0]
        _add_chunk_meta(head, head_base.chunk_meta, full_id)
        high = trace_id >> 64
        if high:
            head["meta"]["_dd.p.tid"] = "%016x" % high
        if not roots:
            # a partial chunk (the root has not ended yet): like ddtrace, tag its first span
            roots = [(head, None, head_base)]
        origin = None
        for dd_span, span, base in roots:
            if dd_span is not head:
                _add_chunk_meta(dd_span, base.chunk_meta, full_id)
            origin = self._tag_root(dd_span, span) or origin
        if origin:
            for dd_span in chunk:
                dd_span["meta"].setdefault("_dd.origin", origin)

    def _tag_root(self, dd_span: DDSpan, span: Any) -> Optional[str]:
        """Sampling priority and propagated tags of a local root; returns the origin, if any."""
        context = parent = None
        if span is not None:
            context = span.context
            parent = span.parent
        state = self._dd_state(context.trace_state) if context is not None else None
        sampled = bool(context.trace_flags & 1) if context is not None else True
        dd_span["metrics"]["_sampling_priority_v1"] = sampling_priority(sampled, state)
        if parent is not None:
            parent_state = self._dd_state(parent.trace_state)
            if parent_state is not None and parent_state.last_parent and \
                    parent_state.last_parent != "0000000000000000":
                dd_span["meta"]["_dd.parent_id"] = parent_state.last_parent
        if state is None:
            return None
        meta = dd_span["meta"]
        for key, value in state.tags.items():
            if key != "_dd.p.tid":  # the tid comes from the trace id itself
                meta.setdefault(key, value)
        return state.origin or None

    def map_span(self, span: Any) -> DDSpan:
        """One span alone (no chunk-level tags)."""
        return self._map_span(span)[0]

    def _map_span(self, span: Any) -> Tuple[DDSpan, int, bool, "_Base"]:
        """The Datadog span, its full trace id, whether it is a local root, and its base."""
        (trace_id, span_id, parent_id, is_root, name, kind, status, start, end, attributes, events, links,
         resource_obj, scope) = _span_parts(span)
        status_code = status.status_code
        last = self._last  # consecutive spans nearly always share resource, scope, kind, status
        base = last[4]
        if last[0] is not resource_obj or last[1] is not scope or last[2] is not kind \
                or last[3] is not status_code:
            entry = self._previous
            if entry[0] is not resource_obj or entry[1] is not scope or entry[2] is not kind \
                    or entry[3] is not status_code:
                entry = (resource_obj, scope, kind, status_code, self._base(resource_obj, scope, kind, status_code))
            base = entry[4]
            # each entry is one tuple checked whole: another thread's store never mixes two
            self._previous = last
            self._last = entry

        meta = base.meta.copy()
        metrics = base.metrics.copy() if base.metrics else {}
        for key, value in attributes.items():  # strings to meta, numbers to metrics: the hot loop
            vtype = type(value)
            if vtype is str:
                meta[key] = value
            elif vtype is int:
                metrics[key] = value  # ints beyond 64 bits are fixed by the encoder if ever met
            elif vtype is float:
                if value - value == 0.0:  # drops NaN and +-inf, which the agent rejects
                    metrics[key] = value
            elif vtype is bool:  # as _to_str writes it, without the call
                meta[key] = "true" if value else "false"
            else:
                meta[key] = _to_str(value)
        special = base.special or not _SPECIAL_KEYS.isdisjoint(attributes)
        if special:
            dd_resource, op_name, span_type, service = self._special(
                attributes, meta, metrics, base, kind, name)
        else:  # the common span: nothing in it changes name, resource, type or service
            service = base.service
            op_name = base.op_name
            dd_resource = name
            span_type = base.span_type

        dd_span: DDSpan = {
            "trace_id": trace_id & _LOW64,
            "span_id": span_id,
            "parent_id": parent_id,
            "start": start,
            "duration": end - start if end > start else 0,
            "error": 0,
            "name": op_name,
            "service": service,
            "resource": dd_resource,
            "type": span_type,
            "meta": meta,
            "metrics": metrics,
        }
        if status_code is _ERROR or events or links:
            self._add_error_events_links(dd_span, status, events, links)
        if special and (base.overrides or not OVERRIDE_KEYS.isdisjoint(attributes)):
            apply_overrides(dd_span, attributes, base.overrides, status_code is _ERROR, events or ())
        return dd_span, trace_id, is_root, base

    def _add_error_events_links(self, dd_span: DDSpan, status: Any, events: Sequence[Any],
                                links: Sequence[Any]) -> None:
        meta = dd_span["meta"]
        if status.status_code is _ERROR:  # (OTel keeps a description only on ERROR)
            dd_span["error"] = 1
            if status.description:
                meta["otel.status_description"] = status.description
            _error_tags(meta, status.description, events or ())
        if events:
            for event in events:
                if event.name == "exception":
                    meta["_dd.span_events.has_exception"] = "true"
                    break
            from otel_dd_lambda.exporters.span_events import events_json, native_event  # spans with events only

            if self.native_span_events:
                dd_span["span_events"] = [native_event(e) for e in events]
            else:
                meta["events"] = events_json(events, self.limits)
        if links:
            dd_span["span_links"] = _links(links)

    @staticmethod
    def _special(attributes: Mapping[str, Any], meta: Dict[str, str], metrics: Dict[str, Any],
                 base: "_Base", kind: Any, name: str) -> Tuple[str, str, str, str]:
        """Name, resource, type and service of a span carrying convention attributes."""
        service = attributes.get("service.name")
        if type(service) is str:
            meta.pop("service.name", None)  # it is the span's service, not a tag
        elif service is not None:
            metrics.pop("service.name", None)
        if type(service) is not str or not service:
            service = base.service

        invocation = "faas.invocation_id" in attributes
        # the serverless conventions name, resource and type the invocation span: then nothing
        # reads the lookup, only its side effects on meta and metrics are wanted
        lookup = _semantic_lookup(attributes, meta, metrics, base.semantic,
                                  not invocation or not _NAMING_KEYS.isdisjoint(attributes))
        # Datadog's serverless conventions name the invocation span unless it names itself:
        # the semantic-convention rules only run for what they would decide
        if invocation and "operation.name" not in attributes:
            op_name = "aws.lambda"
        else:
            op_name = _operation_name(kind, lookup) if lookup is not None else base.op_name
        if invocation and "resource.name" not in attributes:
            dd_resource = _to_str(attributes.get("faas.name") or base.faas_name or service)
        else:
            dd_resource = _resource_name(name, kind, lookup) if lookup is not None else name
        if invocation and "span.type" not in attributes:
            span_type = "serverless"
        else:
            span_type = _span_type(kind, lookup) if lookup is not None else base.span_type

        if invocation:
            _invocation_tags(attributes, meta, base)
        return dd_resource, op_name, span_type, service


def _semantic_lookup(attributes: Mapping[str, Any], meta: Dict[str, str], metrics: Dict[str, Any],
                     semantic: Dict[str, Any], wanted: bool = True) -> Optional[Dict[str, Any]]:
    """The semantic-convention keys of the resource and the span (the span's win), or None when
    neither has any. Datadog's convention keys leave ``meta``; the HTTP status becomes a metric.
    Not ``wanted`` (the span holds none of ``_NAMING_KEYS``): only the metric, and None."""
    if not semantic and _SEMANTIC_KEYS.isdisjoint(attributes):
        return None
    lookup = None
    if wanted:
        lookup = semantic.copy() if semantic else {}
        for key in _SEMANTIC_KEYS.intersection(attributes):
            lookup[key] = attributes[key]
            if key in _DD_CONVENTION_KEYS:
                meta.pop(key, None)
    code = attributes.get("http.response.status_code", attributes.get("http.status_code"))
    if code is not None and "http.status_code" not in metrics:
        try:
            metrics["http.status_code"] = float(code)
        except (TypeError, ValueError):
            pass
    return lookup


def _strip_url_tags(meta: Dict[str, str]) -> None:
    """URL-like tags without query and fragment (the caller saw at least one URL key)."""
    for key in URL_TAGS.intersection(meta):
        meta[key] = strip_url_query(meta[key])  # the same str when it has no query or fragment


def _invocation_tags(attributes: Mapping[str, Any], meta: Dict[str, str], base: "_Base") -> None:
    """Datadog's serverless tags on the Lambda invocation span."""
    meta.setdefault("_dd.origin", "lambda")
    meta["request_id"] = _to_str(attributes["faas.invocation_id"])
    if "cold_start" not in meta:
        cold = attributes.get("faas.coldstart")
        if cold is not None:
            meta["cold_start"] = "true" if cold is True or cold == "true" else "false"
    if "function_arn" not in meta:
        arn = attributes.get("cloud.resource_id") or base.function_arn
        if arn:
            meta["function_arn"] = _to_str(arn)


def _bound_strings(mapping: Dict[str, Any], key_limit: int, value_limit: Optional[int]) -> int:
    """Cut the keys (and str values, if ``value_limit``) of ``mapping`` to the limits, in place and
    in order; returns how many keys and values were cut. Two keys cut to the same prefix keep
    the first one's value, as the agent's truncation does."""
    key_safe = key_limit // 4
    value_safe = value_limit // 4 if value_limit is not None else None
    cut = 0
    rebuilt: List[Tuple[str, Any]] = []
    for key, value in mapping.items():
        if len(key) > key_safe:
            bounded = truncate_utf8(key, key_limit, ELLIPSIS)
            if bounded is not key:
                key = bounded
                cut += 1
        if value_safe is not None and type(value) is str and len(value) > value_safe:
            bounded = truncate_utf8(value, value_limit, ELLIPSIS)  # type: ignore[arg-type]
            if bounded is not value:
                value = bounded
                cut += 1
        rebuilt.append((key, value))
    if cut:
        mapping.clear()
        for key, value in rebuilt:
            mapping.setdefault(key, value)
    return cut


class LimitLog:
    """Counts what the size limits cost (cut tags, cut or dropped spans). Each cause is logged at
    warning level the first time, then at most once a minute, with its count since the last log
    (Lambda bills log volume); ``counts`` holds the totals."""

    INTERVAL = 60.0
    MESSAGES = {
        "tag": "Datadog span limits: %d tag keys/values cut to the agent's limits "
               "(keys 200, values 25,000 UTF-8 bytes)",
        "resource": "Datadog span limits: %d resources cut to 5,000 UTF-8 bytes",
        "events": "Datadog span limits: span events of %d spans shortened to fit one 25,000-byte tag",
        "links": "Datadog span limits: span links of %d spans shortened to fit one 25,000-byte tag",
        "span_cut": "Datadog span limits: %d spans over the payload/log-line size limit were cut to fit "
                    "(error.stack shortened, largest tag values replaced by a marker)",
        "span_dropped": "Datadog span limits: %d spans could not fit the payload/log-line size limit "
                        "even when cut: dropped",
    }

    def __init__(self) -> None:
        self.counts: Dict[str, int] = {}
        self._pending: Dict[str, int] = {}
        self._last: Dict[str, float] = {}

    def note(self, cause: str, count: int = 1) -> None:
        self.counts[cause] = self.counts.get(cause, 0) + count
        self._pending[cause] = self._pending.get(cause, 0) + count

    def report(self) -> None:
        if not self._pending:
            return
        now = time.monotonic()
        for cause, count in list(self._pending.items()):
            last = self._last.get(cause)
            if last is None or now - last >= self.INTERVAL:
                self._last[cause] = now
                self._pending.pop(cause, None)
                logger.warning(self.MESSAGES.get(cause, "Datadog span limits: %d " + cause), count)


class _Base:
    __slots__ = ("resource_obj", "scope", "meta", "metrics", "service", "semantic", "faas_name",
                 "function_arn", "op_name", "span_type", "chunk_meta", "overrides", "special")

    def __init__(self, resource_obj: Any, scope: Any, info: _ResourceInfo, scope_meta: Dict[str, str],
                 kind: Any, status_code: Any) -> None:
        self.resource_obj = resource_obj
        self.scope = scope
        meta = dict(info.meta)
        meta.update(scope_meta)
        meta["span.kind"] = _KIND_NAMES.get(kind, "internal")
        meta["otel.status_code"] = _STATUS_NAMES.get(status_code, "Unset")
        self.meta = meta
        self.chunk_meta = info.chunk_meta
        self.metrics = info.metrics
        self.service = info.service
        self.semantic = info.semantic
        self.faas_name = info.faas_name
        self.function_arn = info.function_arn
        self.overrides = info.overrides
        # whether every span of this base leaves the fast path (the resource sets something)
        self.special = bool(info.semantic or info.overrides)
        # what a span without semantic-convention keys gets
        self.op_name = _KIND_OPERATION.get(kind, "internal")
        self.span_type = "http" if kind is _CLIENT else ("web" if kind is _SERVER else "custom")


_KIND_OPERATION = {
    SpanKind.INTERNAL: "internal",
    SpanKind.SERVER: "server.request",
    SpanKind.CLIENT: "client.request",
    SpanKind.PRODUCER: "producer",
    SpanKind.CONSUMER: "consumer",
}


def _get(lookup: Mapping[str, Any], *keys: str) -> str:
    for key in keys:
        value = lookup.get(key)
        if value is not None and value != "":
            return value if type(value) is str else _to_str(value)
    return ""


def _operation_name(kind: SpanKind, lookup: Mapping[str, Any]) -> str:
    explicit = _get(lookup, "operation.name")
    if explicit:
        return explicit
    is_client = kind is _CLIENT
    is_server = kind is _SERVER
    if _get(lookup, "http.request.method", "http.method"):
        if is_server:
            return "http.server.request"
        if is_client:
            return "http.client.request"
    db_system = _get(lookup, "db.system", "db.system.name")
    if db_system and is_client:
        return db_system + ".query"
    messaging = _get(lookup, "messaging.system")
    operation = _get(lookup, "messaging.operation")
    if messaging and operation and kind is not SpanKind.INTERNAL:
        return messaging + "." + operation
    rpc = _get(lookup, "rpc.system")
    if is_client and rpc == "aws-api":
        service = _get(lookup, "rpc.service")
        return "aws." + service.lower() + ".request" if service else "aws.client.request"
    if rpc and (is_client or is_server):
        return rpc + (".client.request" if is_client else ".server.request")
    if is_client:
        provider = _get(lookup, "faas.invoked_provider")
        invoked = _get(lookup, "faas.invoked_name")
        if provider and invoked:
            return provider + "." + invoked + ".invoke"
    trigger = _get(lookup, "faas.trigger")
    if is_server and trigger:
        return trigger + ".invoke"
    if _get(lookup, "graphql.operation.type"):
        return "graphql.server.request"
    protocol = _get(lookup, "network.protocol.name")
    if is_server:
        return protocol + ".server.request" if protocol else "server.request"
    if is_client:
        return protocol + ".client.request" if protocol else "client.request"
    return _KIND_OPERATION.get(kind, "internal")


def _resource_name(span_name: str, kind: SpanKind, lookup: Mapping[str, Any]) -> str:
    explicit = _get(lookup, "resource.name")
    if explicit:
        return explicit
    method = _get(lookup, "http.request.method", "http.method")
    if method:
        if method == "_OTHER":
            method = "HTTP"
        if kind is _SERVER:
            route = _get(lookup, "http.route")
            if route:
                return method + " " + route
        return method
    operation = _get(lookup, "messaging.operation")
    if operation:
        destination = _get(lookup, "messaging.destination.name", "messaging.destination")
        return operation + " " + destination if destination else operation
    rpc_method = _get(lookup, "rpc.method")
    if rpc_method:
        rpc_service = _get(lookup, "rpc.service")
        return rpc_method + " " + rpc_service if rpc_service else rpc_method
    graphql = _get(lookup, "graphql.operation.type")
    if graphql:
        graphql_name = _get(lookup, "graphql.operation.name")
        return graphql + " " + graphql_name if graphql_name else graphql
    if _get(lookup, "db.system", "db.system.name"):
        statement = _get(lookup, "db.statement", "db.query.text")
        if statement:
            return statement
    return span_name


def _span_type(kind: SpanKind, lookup: Mapping[str, Any]) -> str:
    explicit = _get(lookup, "span.type")
    if explicit:
        return explicit
    if kind is _SERVER:
        return "web"
    if kind is _CLIENT:
        db_system = _get(lookup, "db.system", "db.system.name")
        return _db_type(db_system) if db_system else "http"
    return "custom"


def _error_tags(meta: Dict[str, str], description: Optional[str], events: Sequence[Any]) -> None:
    exception = None
    for event in events:
        if event.name == "exception":
            exception = _plain_dict(event.attributes)
            break
    message = description or (exception.get("exception.message") if exception else None)
    if message:
        meta.setdefault("error.msg", _to_str(message))
    if exception:
        if exception.get("exception.type"):
            meta.setdefault("error.type", _to_str(exception["exception.type"]))
        if exception.get("exception.stacktrace"):
            meta.setdefault("error.stack", _to_str(exception["exception.stacktrace"]))


def _links(links: Sequence[Any]) -> List[Dict[str, Any]]:
    """The span links in Datadog's form. The links of a batch (SQS, Kinesis...) often share one
    context object (records carrying the same upstream context): what comes from a context, the
    tracestate header above all, is built once per context object in the call, then copied."""
    by_context: Dict[int, Dict[str, Any]] = {}
    out: List[Dict[str, Any]] = []
    for link in links:
        context = link.context
        fields = by_context.get(id(context))  # the links hold the contexts: ids stay unique here
        if fields is None:
            fields = by_context[id(context)] = _context_fields(context)
        item = fields.copy()
        attributes = _plain_dict(link.attributes)
        if attributes:
            item["attributes"] = _link_attributes(attributes)
        out.append(item)
    return out


def _context_fields(context: Any) -> Dict[str, Any]:
    """A link's fields that come from its context: ids, ``tracestate`` when there is one, and
    ``flags``. A span pointer (ids 0) has the shape ddtrace sends: no flags nor high trace id
    bits."""
    if _SDK_SPAN_TYPES and type(context) is SpanContext:  # the tuple layout the probe saw: one slice
        trace_id, span_id, _, flags, trace_state = context[:5]
    else:
        trace_id, span_id, flags, trace_state = (context.trace_id, context.span_id, context.trace_flags,
                                                 context.trace_state)
    fields: Dict[str, Any] = {"trace_id": trace_id & _LOW64, "span_id": span_id}
    if trace_state:
        fields["tracestate"] = trace_state.to_header()
    if trace_id or span_id:
        fields["trace_id_high"] = trace_id >> 64
        fields["flags"] = int(flags) | _FLAGS_SET
    return fields


def _link_attributes(attributes: Mapping[str, Any]) -> Mapping[str, str]:
    """Datadog's link attributes are str -> str: sequences become ``key.0``, ``key.1``, ...

    The common case (str values, no key or value long enough to exceed its limit) returns
    ``attributes`` itself, not a copy: nothing after the mapping writes into a link's attributes."""
    for key, value in attributes.items():
        if type(value) is not str or len(value) > _SAFE_VALUE_CHARS or len(key) > _SAFE_KEY_CHARS:
            break
    else:
        return attributes
    flat: Dict[str, str] = {}
    for key, value in attributes.items():
        if type(value) is str:
            flat[key] = value
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                flat["%s.%d" % (key, index)] = _to_str(item) if type(item) is not str else item
        else:
            flat[key] = _to_str(value)
    if flat and (max(map(len, flat.values())) > _SAFE_VALUE_CHARS or max(map(len, flat)) > _SAFE_KEY_CHARS):
        _bound_strings(flat, MAX_META_KEY, MAX_META_VALUE)
    return flat
