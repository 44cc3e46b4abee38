"""Every environment variable the package honours, read in this one place.

Datadog's Lambda variables (users migrate with their configuration) and the standard ``OTEL_*``
ones. Functions read ``os.environ`` when called, so a test or a late ``os.environ`` change is
seen; nothing here is read at import time.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, TypeVar

T = TypeVar("T")

# Style names of the composite propagator, in Datadog's default precedence.
DATADOG = "datadog"
TRACECONTEXT = "tracecontext"
XRAY = "xray"
XRAY_LAMBDA = "xray-lambda"  # Lambda's _X_AMZN_TRACE_ID, a last resort
BAGGAGE = "baggage"
# ddtrace's default is "datadog,tracecontext,baggage"; X-Ray is Lambda's own (carrier, then function).
DEFAULT_STYLES: Tuple[str, ...] = (DATADOG, TRACECONTEXT, BAGGAGE, XRAY, XRAY_LAMBDA)

# Names users write in DD_TRACE_PROPAGATION_STYLE* / OTEL_PROPAGATORS, mapped to our styles.
_STYLE_ALIASES = {
    "datadog": DATADOG,
    "tracecontext": TRACECONTEXT,
    "w3c": TRACECONTEXT,
    "xray": XRAY,
    "datadog_xray": XRAY,
    "awsxray": XRAY,
    "xray-lambda": XRAY_LAMBDA,
    "xray_lambda": XRAY_LAMBDA,
    "baggage": BAGGAGE,
}
# Entry-point names that stand for "the whole composite" rather than one style.
_COMPOSITE_NAMES = frozenset(("datadog_composite",))


def _env(environ: Optional[Mapping[str, str]]) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def _split(value: str) -> List[str]:
    return [part.strip().lower() for part in value.replace(" ", ",").split(",") if part.strip()]


def parse_styles(value: str) -> Optional[Tuple[str, ...]]:
    """Style names from a comma/space list; unknown names are skipped. None when nothing known."""
    styles: List[str] = []
    names = _split(value)
    if names == ["none"]:
        return ()
    for name in names:
        style = _STYLE_ALIASES.get(name)
        if style and style not in styles:
            styles.append(style)
    if XRAY in styles and XRAY_LAMBDA not in styles and "xray" in names:
        # OTel's "xray" in Lambda means the carrier and then the function's own X-Ray header.
        styles.insert(styles.index(XRAY) + 1, XRAY_LAMBDA)
    return tuple(styles) if styles else None


def propagation_styles(direction: str, environ: Optional[Mapping[str, str]] = None) -> Tuple[str, ...]:
    """Styles for ``direction`` ("extract" or "inject"), by Datadog's then OTel's variables."""
    env = _env(environ)
    for name in (
        "DD_TRACE_PROPAGATION_STYLE_" + direction.upper(),
        "DD_TRACE_PROPAGATION_STYLE",
        "OTEL_PROPAGATORS",
    ):
        value = env.get(name)
        if not value:
            continue
        if name == "OTEL_PROPAGATORS" and set(_split(value)) <= _COMPOSITE_NAMES:
            continue
        styles = parse_styles(value)
        if styles is not None:
            return styles
    return DEFAULT_STYLES


# W3C baggage limits: ddtrace's constants, and the variables Datadog's Go/Java/JS tracers read.
DEFAULT_BAGGAGE_MAX_ITEMS = 64
DEFAULT_BAGGAGE_MAX_BYTES = 8192
DEFAULT_BAGGAGE_TAG_KEYS: Tuple[str, ...] = ("user.id", "account.id", "session.id")
ALL_BAGGAGE_KEYS = "*"


def baggage_limits(environ: Optional[Mapping[str, str]] = None) -> Tuple[int, int]:
    """``(DD_TRACE_BAGGAGE_MAX_ITEMS, DD_TRACE_BAGGAGE_MAX_BYTES)``; a value below 1 means the default."""
    items = env_int("DD_TRACE_BAGGAGE_MAX_ITEMS", DEFAULT_BAGGAGE_MAX_ITEMS, environ)
    size = env_int("DD_TRACE_BAGGAGE_MAX_BYTES", DEFAULT_BAGGAGE_MAX_BYTES, environ)
    return (items if items > 0 else DEFAULT_BAGGAGE_MAX_ITEMS, size if size > 0 else DEFAULT_BAGGAGE_MAX_BYTES)


def baggage_tag_keys(environ: Optional[Mapping[str, str]] = None) -> Tuple[str, ...]:
    """``DD_TRACE_BAGGAGE_TAG_KEYS``: the baggage keys copied to ``baggage.<key>`` span tags (ddtrace's
    default and parsing; set but empty: none). ``("*",)`` (``ALL_BAGGAGE_KEYS`` among them) means all."""
    value = _env(environ).get("DD_TRACE_BAGGAGE_TAG_KEYS")
    if value is None:
        return DEFAULT_BAGGAGE_TAG_KEYS
    keys = tuple(dict.fromkeys(key.strip() for key in value.split(",") if key.strip()))
    return (ALL_BAGGAGE_KEYS,) if ALL_BAGGAGE_KEYS in keys else keys


def env_flag(name: str, default: bool, environ: Optional[Mapping[str, str]] = None) -> bool:
    value = _env(environ).get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


# ---------------------------------------------------------------- handler instrumentation
# (DESIGN §8: the Datadog Lambda variables users migrate with, plus OTel's service name.)

_DEFAULT_COLD_START_SKIP_LIBS = ("ddtrace.internal.compat", "ddtrace.filters")
DEFAULT_APM_FLUSH_DEADLINE_MS = 100


def env_int(name: str, default: int, environ: Optional[Mapping[str, str]] = None) -> int:
    value = _env(environ).get(name)
    try:
        return int(value.strip()) if value and value.strip() else default
    except ValueError:
        return default


def parse_dd_tags(value: Optional[str]) -> Tuple[Tuple[str, str], ...]:
    """``DD_TAGS``: ``k:v`` pairs separated by commas or spaces (a bare ``k`` has value "")."""
    pairs: List[Tuple[str, str]] = []
    for part in (value or "").replace(",", " ").split():
        key, _, tag_value = part.partition(":")
        if key:
            pairs.append((key, tag_value))
    return tuple(pairs)


def trace_enabled(environ: Optional[Mapping[str, str]] = None) -> bool:
    """``DD_TRACE_ENABLED`` (default on); ``OTEL_SDK_DISABLED=true`` also turns tracing off."""
    if env_flag("OTEL_SDK_DISABLED", False, environ):
        return False
    return env_flag("DD_TRACE_ENABLED", True, environ)


class LambdaSettings:
    """Everything the handler instrumentation reads from the environment, read once per call
    of ``lambda_settings()`` (a handful of ``dict.get``s, so cheap enough to re-read in tests)."""

    __slots__ = (
        "trace_enabled", "merge_xray_traces", "service", "env", "version", "tags",
        "logs_injection", "cold_start_tracing", "min_cold_start_duration_ms",
        "cold_start_skip_libs", "managed_services", "lambda_handler", "profiling_enabled",
        "profiling_ignore_profiler", "flush_to_log", "xray_daemon_address", "function_name",
        "function_version", "memory_mb", "region", "xray_trace_header", "flush_margin_ms",
        "log_stream_name", "timeout_detection", "apm_flush_deadline_ms", "managed_instances",
        "capture_payload", "capture_payload_max_depth", "span_attribute_limit_from_env",
        "encode_authorizer_context",
        "baggage_tag_keys",
    )

    def __init__(self, environ: Optional[Mapping[str, str]] = None) -> None:
        env = _env(environ)
        self.trace_enabled: bool = trace_enabled(env)
        self.merge_xray_traces: bool = env_flag("DD_MERGE_XRAY_TRACES", False, env)
        self.function_name: Optional[str] = env.get("AWS_LAMBDA_FUNCTION_NAME") or None
        self.function_version: Optional[str] = env.get("AWS_LAMBDA_FUNCTION_VERSION") or None
        memory = env_int("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", 0, env)
        self.memory_mb: Optional[int] = memory or None
        self.region: Optional[str] = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None
        # DD_SERVICE wins (users migrate with it), then OTel's name, then the function name.
        self.service: Optional[str] = (
            env.get("DD_SERVICE") or env.get("OTEL_SERVICE_NAME") or self.function_name or None
        )
        self.env: Optional[str] = env.get("DD_ENV") or None
        self.version: Optional[str] = env.get("DD_VERSION") or None
        self.tags: Tuple[Tuple[str, str], ...] = parse_dd_tags(env.get("DD_TAGS"))
        self.logs_injection: bool = env_flag("DD_LOGS_INJECTION", True, env)
        self.managed_instances: bool = managed_instances(env)
        # Like datadog_lambda: on by default, but only meaningful with tracing on; and off on
        # Lambda Managed Instances, where init happens ahead of demand and the import spans under
        # a worker's first invocation would describe no wait of that invocation.
        self.cold_start_tracing: bool = (self.trace_enabled and not self.managed_instances
                                         and env_flag("DD_COLD_START_TRACING", True, env))
        self.min_cold_start_duration_ms: int = env_int("DD_MIN_COLD_START_DURATION", 3, env)
        skip = env.get("DD_COLD_START_TRACE_SKIP_LIB")
        self.cold_start_skip_libs: frozenset = frozenset(
            (p.strip() for p in skip.split(",") if p.strip()) if skip is not None else _DEFAULT_COLD_START_SKIP_LIBS
        )
        self.managed_services: bool = self.trace_enabled and env_flag("DD_TRACE_MANAGED_SERVICES", True, env)
        self.lambda_handler: Optional[str] = env.get("DD_LAMBDA_HANDLER") or None
        self.profiling_enabled: bool = env_flag("DD_PROFILING_ENABLED", False, env)
        self.profiling_ignore_profiler: bool = env_flag("DD_PROFILING_IGNORE_PROFILER", False, env)
        # DD_FLUSH_TO_LOG=true: spans as JSON lines on stdout for the Datadog Forwarder.
        self.flush_to_log: bool = env_flag("DD_FLUSH_TO_LOG", False, env)
        self.xray_daemon_address: Optional[str] = env.get("AWS_XRAY_DAEMON_ADDRESS") or None
        self.xray_trace_header: Optional[str] = env.get("_X_AMZN_TRACE_ID") or None
        # Time kept back from the invocation's deadline when flushing spans.
        self.flush_margin_ms: int = max(0, env_int("OTEL_DD_LAMBDA_FLUSH_MARGIN_MS", 50, env))
        self.log_stream_name: Optional[str] = env.get("AWS_LAMBDA_LOG_STREAM_NAME") or None
        # Impending timeout: the invocation span is ended as an error and flushed this long
        # before the deadline (ddtrace's variable and default; a negative value means the
        # default there too). DD_TRACE_AWS_LAMBDA_ENABLED=false is ddtrace's switch for it.
        self.timeout_detection: bool = env_flag("DD_TRACE_AWS_LAMBDA_ENABLED", True, env)
        deadline = env_int("DD_APM_FLUSH_DEADLINE_MILLISECONDS", DEFAULT_APM_FLUSH_DEADLINE_MS, env)
        self.apm_flush_deadline_ms: int = deadline if deadline >= 0 else DEFAULT_APM_FLUSH_DEADLINE_MS
        # DD_CAPTURE_LAMBDA_PAYLOAD: request and response as flattened tags of the invocation span
        # (datadog_lambda's variables and defaults).
        self.capture_payload: bool = env_flag("DD_CAPTURE_LAMBDA_PAYLOAD", False, env)
        self.capture_payload_max_depth: int = env_int("DD_CAPTURE_LAMBDA_PAYLOAD_MAX_DEPTH", 10, env)
        # An API Gateway Lambda authorizer's policy carries its trace context to the function
        # behind the API (datadog_lambda's variable and default).
        self.encode_authorizer_context: bool = self.trace_enabled and env_flag(
            "DD_ENCODE_AUTHORIZER_CONTEXT", True, env)
        # Whether the user chose the SDK's span attribute count limit (the SDK reads the values):
        # configure() raises the default only when they did not.
        self.span_attribute_limit_from_env: bool = any(
            (env.get(name) or "").strip() for name in ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "OTEL_ATTRIBUTE_COUNT_LIMIT"))
        # Extracted baggage keys tagged on the invocation span as baggage.<key> (ddtrace's rule).
        self.baggage_tag_keys: Tuple[str, ...] = baggage_tag_keys(env)


def lambda_settings(environ: Optional[Mapping[str, str]] = None) -> LambdaSettings:
    return LambdaSettings(environ)


# ---------------------------------------------------------------- event extraction

BATCH_PARENT_FIRST = "first"  # the first record's context is the invocation's parent
BATCH_PARENT_NONE = "none"  # a batch starts a new trace; every record is only a span link


def batch_parent(environ: Optional[Mapping[str, str]] = None) -> str:
    """``DD_BATCH_PARENT``: how a batch (SQS, SNS, Kinesis, DynamoDB) parents the invocation.

    ``first`` (default, what Datadog's Lambda library does, so Datadog views still connect) or
    ``none`` (the OTel messaging convention: a new root with one link per record).
    """
    value = (_env(environ).get("DD_BATCH_PARENT") or "").strip().lower()
    return BATCH_PARENT_NONE if value in ("none", "links", "root") else BATCH_PARENT_FIRST


def trace_extractor(environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """``DD_TRACE_EXTRACTOR``: ``<module file>.<function>`` of a user's custom extractor."""
    value = (_env(environ).get("DD_TRACE_EXTRACTOR") or "").strip()
    return value or None


def span_link_limit(environ: Optional[Mapping[str, str]] = None) -> int:
    """``OTEL_SPAN_LINK_COUNT_LIMIT`` (default 128): links beyond it would be dropped by the SDK
    anyway, so extraction stops building them there."""
    value = _env(environ).get("OTEL_SPAN_LINK_COUNT_LIMIT")
    try:
        return max(0, int(value)) if value else 128
    except ValueError:
        return 128


# ---------------------------------------------------------------- the Lambda runtime


def in_lambda(environ: Optional[Mapping[str, str]] = None) -> bool:
    """True inside a Lambda execution environment (``AWS_LAMBDA_FUNCTION_NAME`` is set)."""
    return bool(_env(environ).get("AWS_LAMBDA_FUNCTION_NAME"))


MANAGED_INSTANCES = "lambda-managed-instances"


def initialization_type(environ: Optional[Mapping[str, str]] = None) -> str:
    """``AWS_LAMBDA_INITIALIZATION_TYPE``: ``on-demand``, ``provisioned-concurrency``,
    ``snap-start`` or ``lambda-managed-instances`` ("" outside Lambda)."""
    return _env(environ).get("AWS_LAMBDA_INITIALIZATION_TYPE") or ""


def managed_instances(environ: Optional[Mapping[str, str]] = None) -> bool:
    """Lambda Managed Instances: Python serves concurrent requests in forked worker processes."""
    return initialization_type(environ) == MANAGED_INSTANCES


def function_name(environ: Optional[Mapping[str, str]] = None) -> str:
    return _env(environ).get("AWS_LAMBDA_FUNCTION_NAME", "")


def region(environ: Optional[Mapping[str, str]] = None) -> str:
    env = _env(environ)
    return env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or ""


def lambda_trace_header(environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """Lambda's ``_X_AMZN_TRACE_ID``, set anew for each invocation (so never cached: read from
    ``os.environ``'s own bytes, as ``env_cached`` checks it, when there are such)."""
    if environ is None:
        data = _environ_bytes()
        if data is not None:
            value = data.get(b"_X_AMZN_TRACE_ID")
            return os.fsdecode(value) if value else None
    return _env(environ).get("_X_AMZN_TRACE_ID") or None


def _environ_bytes() -> Optional[Dict[bytes, bytes]]:
    """``os.environ``'s own bytes-keyed dict on CPython/posix (assignments and ``putenv`` through
    ``os.environ`` update it), else None. Reading it skips the encoding and decoding that
    ``os.environ`` does in Python for every name (see ``env_cached``)."""
    data = getattr(os.environ, "_data", None)
    return data if os.name == "posix" and type(data) is dict else None


def xray_daemon_address(environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    return _env(environ).get("AWS_XRAY_DAEMON_ADDRESS") or None


def env_cached(
    names: Tuple[str, ...], build: Callable[[], T], environ: Optional[Mapping[str, str]] = None
) -> Callable[[], T]:
    """A function returning ``build()``'s result, built again only when one of ``names`` has
    changed since the last build (checked on every call, so on every event: it is cheap).

    The snapshot taken before each build holds the variables that are set, as ``(name, value)``
    pairs, and the names of those that are not: nothing changed exactly when the live
    environment's items include the pairs and its keys none of the names, two C-level set
    operations on live views, nothing built per check. On CPython/posix the views are of
    ``os.environ``'s own bytes-keyed dict, which assignments update: ``os.environ``'s own views and
    ``get`` encode and decode every name in Python (measured: 5 us for six names, on an
    extraction path of about 12 us). Off posix, or for another mapping, that mapping's views.
    """
    env = _env(environ)
    data = _environ_bytes() if env is os.environ else None
    mapping: Any = env
    keys: Tuple[Any, ...] = names
    if data is not None:
        mapping, keys = data, tuple(name.encode() for name in names)
    items, live_keys = mapping.items(), mapping.keys()
    state: List[Any] = [None]  # (present pairs, absent names, built value), replaced whole

    def current() -> T:
        last = state[0]
        if last is None or not (items >= last[0] and live_keys.isdisjoint(last[1])):
            values = [(key, mapping.get(key)) for key in keys]
            present = frozenset(pair for pair in values if pair[1] is not None)
            absent = tuple(key for key, value in values if value is None)  # isdisjoint walks a tuple fastest
            last = state[0] = (present, absent, build())
        return last[2]

    return current


def _new_token() -> Tuple[object]:
    return (object(),)  # equal to nothing but itself


def env_fingerprint(
    names: Tuple[str, ...], environ: Optional[Mapping[str, str]] = None
) -> Callable[[], Tuple[Any, ...]]:
    """A function returning a token for the values of ``names``: the same object until one of
    them changes, then a new one (``env_cached`` building tokens)."""
    return env_cached(names, _new_token, environ)


# ---------------------------------------------------------------- tag hygiene

KEEP_URL_QUERY_ENV = "OTEL_DD_LAMBDA_KEEP_URL_QUERY"


def keep_url_query(environ: Optional[Mapping[str, str]] = None) -> bool:
    """Whether URL-like tags keep their query string and fragment (default: stripped, as they
    carry secrets such as an OAuth ``code=``). Our own switch: ddtrace's nearest knobs
    (``DD_TRACE_HTTP_CLIENT_TAG_QUERY_STRING``, ``DD_HTTP_SERVER_TAG_QUERY_STRING``) apply to its
    own HTTP integrations, keep the query by default and obfuscate it with a regex instead."""
    return env_flag(KEEP_URL_QUERY_ENV, False, environ)


# ---------------------------------------------------------------- inferred spans' services

INFERRED_SERVICE_ENV = (
    "DD_SERVICE_MAPPING",
    "DD_TRACE_AWS_SERVICE_REPRESENTATION_ENABLED",
    "DD_TRACE_REMOVE_INTEGRATION_SERVICE_NAMES_ENABLED",
    "DD_SERVICE",
    "OTEL_SERVICE_NAME",
    "AWS_LAMBDA_FUNCTION_NAME",
    KEEP_URL_QUERY_ENV,
)


def parse_service_mapping(value: Optional[str]) -> Dict[str, str]:
    """``DD_SERVICE_MAPPING``: ``from:to`` pairs separated by commas, as datadog_lambda reads them
    (an entry without exactly one ``:``, with an empty side or mapping a name to itself is skipped)."""
    mapping: Dict[str, str] = {}
    for entry in (value or "").split(","):
        parts = entry.split(":")
        if len(parts) == 2:
            key, service = parts[0].strip(), parts[1].strip()
            if key and service and key != service:
                mapping[key] = service
    return mapping


class InferredServiceSettings:
    """How an inferred span (the managed service that sent the event) is serviced."""

    __slots__ = ("mapping", "representation", "remove_integration_names", "user_service", "base_service",
                 "keep_url_query")

    def __init__(self, environ: Optional[Mapping[str, str]] = None) -> None:
        env = _env(environ)
        # keys: an API id, queue, topic, stream, table, bucket, source or host, or a generic
        # ``lambda_<service>`` key; the specific key wins
        self.mapping: Dict[str, str] = parse_service_mapping(env.get("DD_SERVICE_MAPPING"))
        # off: a managed service is serviced by its kind ("sqs", ...), an HTTP one by the function's
        self.representation: bool = env_flag("DD_TRACE_AWS_SERVICE_REPRESENTATION_ENABLED", True, env)
        self.remove_integration_names: bool = env_flag("DD_TRACE_REMOVE_INTEGRATION_SERVICE_NAMES_ENABLED",
                                                       False, env)
        # the service the user named (ddtrace reads OTEL_SERVICE_NAME as DD_SERVICE)
        self.user_service: Optional[str] = env.get("DD_SERVICE") or env.get("OTEL_SERVICE_NAME") or None
        # the function's service as Datadog compares it (lowercase): a span of another service
        # says which one it stands beside (``_dd.base_service``)
        base = self.user_service or env.get("AWS_LAMBDA_FUNCTION_NAME") or ""
        self.base_service: str = base.lower()
        self.keep_url_query: bool = keep_url_query(env)  # for the span's http.url


# ---------------------------------------------------------------- the exporter

EXPORT_MODE_ENV = "OTEL_DD_LAMBDA_EXPORT_MODE"  # agent | log | auto
FLUSH_TIMEOUT_ENV = "OTEL_DD_LAMBDA_FLUSH_TIMEOUT_MS"
# The cap on one flush (connect, send and every read of the whole export). The agent is
# normally the Datadog extension on 127.0.0.1: it answers a healthy request in a few
# milliseconds (tens for a 5 MiB payload on a throttled small function), so 1 s leaves two
# orders of magnitude of slack while bounding what a hung agent costs the invocation it hangs
# (later invocations only probe it). Raise it for a remote agent.
DEFAULT_FLUSH_TIMEOUT_MS = 1000


class ExporterSettings:
    """What ``DatadogSpanExporter`` and its processor read from the environment."""

    __slots__ = (
        "export_mode", "flush_to_log", "in_lambda", "agent_url", "agent_host", "agent_port",
        "native_span_events", "service", "env", "version", "max_queue_size", "flush_timeout_ms",
        "keep_url_query",
    )

    def __init__(self, environ: Optional[Mapping[str, str]] = None) -> None:
        env = _env(environ)
        self.export_mode: str = (env.get(EXPORT_MODE_ENV) or "auto").strip().lower()
        # DD_FLUSH_TO_LOG=true: datadog_lambda's switch for "write spans to the logs".
        self.flush_to_log: bool = env_flag("DD_FLUSH_TO_LOG", False, env)
        self.in_lambda: bool = in_lambda(env)
        self.agent_url: Optional[str] = env.get("DD_TRACE_AGENT_URL") or None
        self.agent_host: Optional[str] = env.get("DD_AGENT_HOST") or None
        self.agent_port: Optional[str] = env.get("DD_TRACE_AGENT_PORT") or None
        self.native_span_events: bool = env_flag("DD_TRACE_NATIVE_SPAN_EVENTS", False, env)
        self.service: Optional[str] = env.get("DD_SERVICE") or None
        self.env: Optional[str] = env.get("DD_ENV") or None
        self.version: Optional[str] = env.get("DD_VERSION") or None
        queue = env_int("OTEL_BSP_MAX_QUEUE_SIZE", 2048, env)
        self.max_queue_size: int = queue if queue > 0 else 2048
        flush_timeout = env_int(FLUSH_TIMEOUT_ENV, DEFAULT_FLUSH_TIMEOUT_MS, env)
        self.flush_timeout_ms: int = flush_timeout if flush_timeout > 0 else DEFAULT_FLUSH_TIMEOUT_MS
        self.keep_url_query: bool = keep_url_query(env)


def exporter_settings(environ: Optional[Mapping[str, str]] = None) -> ExporterSettings:
    return ExporterSettings(environ)


# ---------------------------------------------------------------- span pointers


def add_span_pointers(environ: Optional[Mapping[str, str]] = None) -> bool:
    """``DD_BOTOCORE_ADD_SPAN_POINTERS`` (default on, as in Datadog's libraries): span pointers on
    S3/DynamoDB-triggered invocations and on boto3 S3/DynamoDB writes."""
    return env_flag("DD_BOTOCORE_ADD_SPAN_POINTERS", True, environ)


def dynamodb_primary_keys_json(environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """``DD_BOTOCORE_DYNAMODB_TABLE_PRIMARY_KEYS``: JSON ``{"table": ["key", ...]}``, the key names
    a PutItem's pointer needs (the item does not say which of its attributes form the key)."""
    return _env(environ).get("DD_BOTOCORE_DYNAMODB_TABLE_PRIMARY_KEYS") or None


# --------------------------------------------------------------- OpenTelemetry's Lambda instrumentation

OTEL_CONFIGURATOR_ENV = "OTEL_PYTHON_CONFIGURATOR"
OTEL_DISTRO_ENV = "OTEL_PYTHON_DISTRO"


def otel_lambda_handler_path(environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """The handler OpenTelemetry's ``AwsLambdaInstrumentor`` wraps: ``ORIG_HANDLER`` (set by OTel's
    Lambda layer, whose own module then stands in ``_HANDLER``), else ``_HANDLER``."""
    env = _env(environ)
    return (env.get("ORIG_HANDLER") or env.get("_HANDLER") or "").strip() or None


def otel_selected(kind: str, name: str, environ: Optional[Mapping[str, str]] = None) -> bool:
    """True when ``OTEL_PYTHON_DISTRO`` (``kind="distro"``) or ``OTEL_PYTHON_CONFIGURATOR``
    (``kind="configurator"``) names ``name``."""
    variable = OTEL_DISTRO_ENV if kind == "distro" else OTEL_CONFIGURATOR_ENV
    return (_env(environ).get(variable) or "").strip() == name


def select_otel_configurator(name: str) -> None:
    """Make ``opentelemetry-instrument`` load the configurator ``name`` unless the user chose one
    (it reads the variable after the distro has run)."""
    os.environ.setdefault(OTEL_CONFIGURATOR_ENV, name)
