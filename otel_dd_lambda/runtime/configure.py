"""``configure()``: the one call that sets OTel up for Lambda, Datadog and X-Ray.

It installs, once per process:

- the global propagator: ``DatadogCompositePropagator`` (Datadog, W3C, X-Ray, Datadog precedence);
- a ``TracerProvider`` with the Datadog/X-Ray-compatible ID generator and a Lambda resource
  (``cloud.*``, ``faas.*``, service from ``DD_SERVICE``/``OTEL_SERVICE_NAME``/function name,
  ``deployment.environment`` from ``DD_ENV``, ``service.version`` from ``DD_VERSION``, ``DD_TAGS``);
  built directly, without the SDK's resource detectors (entry-point scans cost cold-start time);
- the Datadog exporter behind the Lambda span processor (synchronous flush at the end of each
  invocation), or log mode for the Datadog Forwarder (``DD_FLUSH_TO_LOG=true``);
- log correlation (``DD_LOGS_INJECTION``), the cold-start import hook
  (``DD_COLD_START_TRACING``) and ddtrace's profiler (``DD_PROFILING_ENABLED``).

With ``DD_TRACE_ENABLED=false`` (or ``OTEL_SDK_DISABLED=true``) it installs nothing and returns
OTel's no-op provider, importing neither the SDK nor the exporter.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

from .. import config, otel_layer
from .._version import __version__
from . import cold_start, snapstart
from .import_hooks import ChainedFinder

logger = logging.getLogger(__name__)

_lock = threading.RLock()
_provider: Optional[Any] = None
_processors: List[Any] = []


def is_configured() -> bool:
    return _provider is not None


def configured_provider() -> Optional[Any]:
    """The provider ``configure()`` installed, or None."""
    return _provider


def lambda_resource_attributes(
    settings: config.LambdaSettings,
    service: Optional[str] = None,
    env: Optional[str] = None,
    version: Optional[str] = None,
    extra: Optional[Mapping[str, Any]] = None,
) -> Dict[str, Any]:
    """The Lambda resource: what the environment says about the function, nothing detected."""
    attributes: Dict[str, Any] = {"cloud.provider": "aws", "cloud.platform": "aws_lambda"}
    # DD_TAGS first: the explicit settings below win a clash, as in Datadog's libraries.
    for key, value in settings.tags:
        attributes[key] = value
    if settings.region:
        attributes["cloud.region"] = settings.region
    if settings.function_name:
        attributes["faas.name"] = settings.function_name
    if settings.function_version:
        attributes["faas.version"] = settings.function_version
    if settings.memory_mb:
        attributes["faas.max_memory"] = settings.memory_mb * 1024 * 1024  # semconv: bytes
    log_stream = settings.log_stream_name
    if log_stream:
        attributes["faas.instance"] = log_stream
    service = service or settings.service
    attributes["service.name"] = service or "unknown_service:aws_lambda"
    env = env or settings.env
    if env:
        attributes["deployment.environment"] = env
        attributes["deployment.environment.name"] = env
    version = version or settings.version
    if version:
        attributes["service.version"] = version
    attributes["telemetry.sdk.language"] = "python"
    attributes["telemetry.sdk.name"] = "opentelemetry"
    attributes["telemetry.distro.name"] = "otel-dd-lambda"
    attributes["telemetry.distro.version"] = __version__
    if extra:
        attributes.update(extra)
    return attributes


def install_propagator() -> Any:
    """Make ``DatadogCompositePropagator`` the global propagator and return it."""
    import sys

    from ..propagators.composite import DatadogCompositePropagator

    if "opentelemetry.propagate" not in sys.modules:
        # opentelemetry.propagate builds a default propagator at import by scanning entry points
        # for OTEL_PROPAGATORS (tens of ms at cold start); it is replaced right away, so skip it.
        # Our composite reads OTEL_PROPAGATORS itself for its styles.
        saved = os.environ.get("OTEL_PROPAGATORS")
        os.environ["OTEL_PROPAGATORS"] = "none"
        try:
            import opentelemetry.propagate  # noqa: F401
        finally:
            if saved is None:
                os.environ.pop("OTEL_PROPAGATORS", None)
            else:
                os.environ["OTEL_PROPAGATORS"] = saved
    from opentelemetry.propagate import set_global_textmap

    propagator = DatadogCompositePropagator()
    set_global_textmap(propagator)
    return propagator


class SetupOptions:
    """What ``configure()`` sets up: its keywords resolved against the environment, once.

    A plain slotted class, read-only by convention (only ``configure()`` builds one): a frozen
    dataclass would import ``dataclasses``, and a ``NamedTuple`` class costs ~2 M instructions to
    build at every cold start (each of its annotations is compiled as a forward reference).
    """

    __slots__ = ("settings", "service", "env", "version", "agent_url", "mode", "exporter", "span_processors",
                 "tracer_provider", "resource_attributes", "set_global", "propagator", "logs_injection",
                 "cold_start_tracing", "profiling", "instrument_botocore")

    def __init__(self, settings: config.LambdaSettings, *, service: Optional[str] = None,
                 env: Optional[str] = None, version: Optional[str] = None, agent_url: Optional[str] = None,
                 mode: Optional[str] = None, exporter: Optional[Any] = None, span_processors: Iterable[Any] = (),
                 tracer_provider: Optional[Any] = None, resource_attributes: Optional[Mapping[str, Any]] = None,
                 set_global: bool = True, propagator: bool = True, logs_injection: Optional[bool] = None,
                 cold_start_tracing: Optional[bool] = None, profiling: Optional[bool] = None,
                 instrument_botocore: bool = True) -> None:
        """A keyword left at None takes the environment's value (``settings``)."""
        self.settings = settings
        self.service: Optional[str] = service or settings.service
        self.env: Optional[str] = env or settings.env
        self.version: Optional[str] = version or settings.version
        self.agent_url = agent_url
        self.mode: Optional[str] = "log" if mode is None and settings.flush_to_log else mode
        self.exporter = exporter
        self.span_processors: Tuple[Any, ...] = tuple(span_processors)
        self.tracer_provider = tracer_provider
        self.resource_attributes = resource_attributes
        self.set_global = set_global
        self.propagator = propagator
        self.logs_injection: bool = settings.logs_injection if logs_injection is None else logs_injection
        self.cold_start_tracing: bool = (settings.cold_start_tracing if cold_start_tracing is None
                                         else cold_start_tracing)
        self.profiling: bool = settings.profiling_enabled if profiling is None else profiling
        self.instrument_botocore = instrument_botocore


def configure(
    *,
    service: Optional[str] = None,
    env: Optional[str] = None,
    version: Optional[str] = None,
    agent_url: Optional[str] = None,
    mode: Optional[str] = None,
    exporter: Optional[Any] = None,
    span_processors: Iterable[Any] = (),
    tracer_provider: Optional[Any] = None,
    resource_attributes: Optional[Mapping[str, Any]] = None,
    set_global: bool = True,
    propagator: bool = True,
    logs_injection: Optional[bool] = None,
    cold_start_tracing: Optional[bool] = None,
    profiling: Optional[bool] = None,
    instrument_botocore: bool = True,
) -> Any:
    """Set up tracing for this Lambda function; returns the ``TracerProvider``. Idempotent.

    ``service``/``env``/``version`` override ``DD_SERVICE``/``DD_ENV``/``DD_VERSION``;
    ``agent_url`` and ``mode`` ("agent", "log", "auto") go to ``DatadogSpanExporter``;
    ``exporter`` replaces the Datadog exporter (any OTel ``SpanExporter``, still behind the Lambda
    processor); ``span_processors`` are added next to it (an OTLP exporter, for example);
    ``tracer_provider`` is an SDK provider of your own to add the Lambda processor to.
    When a global SDK provider is already installed, it is used the same way.
    The second and later calls return the first call's provider and change nothing.
    """
    global _provider
    with _lock:
        if _provider is not None:
            return _provider
        settings = config.lambda_settings()
        if not settings.trace_enabled:
            from opentelemetry.trace import NoOpTracerProvider

            return NoOpTracerProvider()
        try:
            options = SetupOptions(
                settings, service=service, env=env, version=version, agent_url=agent_url, mode=mode,
                exporter=exporter, span_processors=span_processors, tracer_provider=tracer_provider,
                resource_attributes=resource_attributes, set_global=set_global, propagator=propagator,
                logs_injection=logs_injection, cold_start_tracing=cold_start_tracing, profiling=profiling,
                instrument_botocore=instrument_botocore)
            with cold_start.paused_then_frozen():
                _provider = _configure(options)
        except Exception:
            # Tracing must never stop the function: fall back to the no-op provider.
            logger.exception("otel_dd_lambda: tracing setup failed, tracing is off")
            from opentelemetry.trace import NoOpTracerProvider

            return NoOpTracerProvider()
        return _provider


def _configure(options: SetupOptions) -> Any:
    # The import hook goes in first so that the imports below are timed too.
    if options.cold_start_tracing:
        cold_start.install_import_hook()
    snapstart.register_restore_hooks()
    if options.propagator:
        install_propagator()
    provider = _tracer_provider(options)
    _add_exporter(provider, options)
    if options.logs_injection:
        from . import log_correlation

        log_correlation.install(options.service, options.env, options.version)
    if options.profiling:
        from . import profiling

        profiling.start_profiler()
    if options.instrument_botocore:
        _install_botocore_hook()
    return provider


def _tracer_provider(options: SetupOptions) -> Any:
    """The user's provider (given, or the global SDK one), or a new one for Lambda."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    provider = options.tracer_provider
    if provider is None and options.set_global:
        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):
            provider = current  # the user's own SDK provider: add to it, do not fight over it
    if provider is not None:
        if options.set_global and trace.get_tracer_provider() is not provider:
            trace.set_tracer_provider(provider)
        if options.settings.capture_payload and not options.settings.span_attribute_limit_from_env:
            # Its limits are its own: payload tags beyond them are dropped (the wrapper keeps the
            # invocation span's own attributes).
            logger.info("DD_CAPTURE_LAMBDA_PAYLOAD with your own TracerProvider: its span attribute limit "
                        "applies (set OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT to keep every payload tag)")
        return provider

    from opentelemetry.sdk.resources import Resource

    from ..ids import DatadogXRayIdGenerator

    settings = options.settings
    resource = Resource(lambda_resource_attributes(settings, options.service, options.env, options.version,
                                                   options.resource_attributes))
    provider = TracerProvider(resource=resource, id_generator=DatadogXRayIdGenerator(),
                              span_limits=_span_limits(settings))
    if options.set_global:
        trace.set_tracer_provider(provider)
    return provider


# The SDK's default span attribute count limit: the invocation span's own attributes (~40) fit.
_DEFAULT_SPAN_ATTRIBUTES = 128


def _span_limits(settings: config.LambdaSettings) -> Any:
    """The SDK's limits from the environment, with room for the captured payloads when the user
    chose no attribute count limit: past the limit the SDK evicts the *oldest* attributes, the
    invocation span's own."""
    if not settings.capture_payload or settings.span_attribute_limit_from_env:
        return None  # the SDK's own SpanLimits() from the environment
    from opentelemetry.sdk.trace import SpanLimits

    from .payload import MAX_TAGS

    return SpanLimits(max_span_attributes=2 * MAX_TAGS + _DEFAULT_SPAN_ATTRIBUTES)


def _add_exporter(provider: Any, options: SetupOptions) -> None:
    """The Datadog exporter (or the user's) behind the Lambda processor, then the user's processors."""
    from ..exporters.processor import LambdaSpanProcessor

    exporter = options.exporter
    # hook (otel_layer): a provider that already exports to Datadog (OTEL_TRACES_EXPORTER=datadog
    # through the SDK's configurator) gets no second Datadog exporter: each span is sent once
    if exporter is not None or not otel_layer.datadog_export_present(provider):
        if exporter is None:
            from ..exporters.datadog import DatadogSpanExporter

            exporter = DatadogSpanExporter(options.agent_url, mode=options.mode, service=options.service,
                                           env=options.env, version=options.version)
        processor = LambdaSpanProcessor(exporter)
        provider.add_span_processor(processor)
        _processors.append(processor)
    for extra in options.span_processors:
        provider.add_span_processor(extra)


def _install_botocore_hook() -> None:
    """Automatic trace-context injection into boto3 messaging calls.

    Importing botocore costs ~100 ms, so it is never imported here: the hook is installed now if
    botocore's client module is already loaded, else right after something imports it.
    """
    import sys

    global _post_import
    if "botocore.client" in sys.modules:
        _botocore_loaded()
        return
    if _post_import is None:
        _post_import = _PostImportHook()
    _post_import.watch("botocore.client", _botocore_loaded)


def _botocore_loaded() -> None:
    try:
        from ..botocore_hook import install_botocore_hook

        install_botocore_hook()
    except Exception:
        logger.debug("botocore injection hook not installed", exc_info=True)


class _PostImportHook(ChainedFinder):
    """Runs a callback once a given module has executed (not when its code raised: the next
    import of it tries again)."""

    def __init__(self) -> None:
        super().__init__()
        self.callbacks: Dict[str, Callable[[], None]] = {}

    def watch(self, module_name: str, callback: Callable[[], None]) -> None:
        self.callbacks[module_name] = callback
        self.install()

    def wants(self, fullname: str) -> bool:
        return fullname in self.callbacks

    def end(self, name: str, token: Any, succeeded: bool) -> None:
        callback = self.callbacks.pop(name, None) if succeeded else None
        if not self.callbacks:
            self.uninstall()  # nothing left to watch: out of every later import's way
        if callback is not None:
            callback()


_post_import: Optional[_PostImportHook] = None


def _reset_for_tests() -> None:
    """Forget the configured provider (tests only; the global OTel provider stays set)."""
    global _provider
    with _lock:
        if _provider is not None:
            for processor in _processors:
                try:
                    processor.shutdown()
                except Exception:
                    pass
        _processors.clear()
        _provider = None
