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
from typing import Any, Dict, Iterable, Mapping, Optional

from .. import config, otel_layer
from .._version import __version__
from . import cold_start, snapstart

logger = logging.getLogger(__name__)

_lock = threading.RLock()
_provider: Optional[Any] = None
_processors: list = []


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
            _provider = _configure(settings, service, env, version, agent_url, mode, exporter,
                                   span_processors, tracer_provider, resource_attributes, set_global,
                                   propagator, logs_injection, cold_start_tracing, profiling,
                                   instrument_botocore)
        except Exception:
            # Tracing must never stop the function: fall back to the no-op provider.
            logger.exception("otel_dd_lambda: tracing setup failed, tracing is off")
            from opentelemetry.trace import NoOpTracerProvider

            return NoOpTracerProvider()
        return _provider


def _configure(settings: config.LambdaSettings, service: Optional[str], env: Optional[str],
               version: Optional[str], agent_url: Optional[str], mode: Optional[str],
               exporter: Optional[Any], span_processors: Iterable[Any], tracer_provider: Optional[Any],
               resource_attributes: Optional[Mapping[str, Any]], set_global: bool, propagator: bool,
               logs_injection: Optional[bool], cold_start_tracing: Optional[bool],
               profiling: Optional[bool], instrument_botocore: bool) -> Any:
    # The import hook goes in first so that the imports below are timed too.
    if settings.cold_start_tracing if cold_start_tracing is None else cold_start_tracing:
        cold_start.install_import_hook()
    snapstart.register_restore_hooks()
    if propagator:
        install_propagator()

    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    from ..exporters.processor import LambdaSpanProcessor
    from ..ids import DatadogXRayIdGenerator

    service = service or settings.service
    env = env or settings.env
    version = version or settings.version
    provider = tracer_provider
    if provider is None and set_global:
        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):
            provider = current  # the user's own SDK provider: add to it, do not fight over it
    if provider is None:
        from opentelemetry.sdk.resources import Resource

        resource = Resource(lambda_resource_attributes(settings, service, env, version, resource_attributes))
        provider = TracerProvider(resource=resource, id_generator=DatadogXRayIdGenerator())
        if set_global:
            trace.set_tracer_provider(provider)
    elif set_global and trace.get_tracer_provider() is not provider:
        trace.set_tracer_provider(provider)

    # hook (otel_layer): a provider that already exports to Datadog (OTEL_TRACES_EXPORTER=datadog
    # through the SDK's configurator) gets no second Datadog exporter: each span is sent once
    if exporter is not None or not otel_layer.datadog_export_present(provider):
        if exporter is None:
            from ..exporters.datadog import DatadogSpanExporter

            if mode is None and settings.flush_to_log:
                mode = "log"
            exporter = DatadogSpanExporter(agent_url, mode=mode, service=service, env=env, version=version)
        processor = LambdaSpanProcessor(exporter)
        provider.add_span_processor(processor)
        _processors.append(processor)
    for extra in span_processors:
        provider.add_span_processor(extra)

    if settings.logs_injection if logs_injection is None else logs_injection:
        from . import log_correlation

        log_correlation.install(service, env, version)
    if settings.profiling_enabled if profiling is None else profiling:
        from . import profiling as profiling_module

        profiling_module.start_profiler()
    if instrument_botocore:
        _install_botocore_hook()
    return provider


def _install_botocore_hook() -> None:
    """Automatic trace-context injection into boto3 messaging calls.

    Importing botocore costs ~100 ms, so it is never imported here: the hook is installed now if
    botocore's client module is already loaded, else right after something imports it.
    """
    import sys

    if "botocore.client" in sys.modules:
        _botocore_loaded()
    else:
        _PostImportHook.watch("botocore.client", _botocore_loaded)


def _botocore_loaded() -> None:
    try:
        from ..botocore_hook import install_botocore_hook

        install_botocore_hook()
    except Exception:
        logger.debug("botocore injection hook not installed", exc_info=True)


class _PostImportHook:
    """A ``sys.meta_path`` finder that runs a callback once a given module has executed."""

    _callbacks: Dict[str, Any] = {}
    _instance: Optional["_PostImportHook"] = None

    @classmethod
    def watch(cls, module_name: str, callback: Any) -> None:
        import sys

        cls._callbacks[module_name] = callback
        if cls._instance is None:
            cls._instance = cls()
            sys.meta_path.insert(0, cls._instance)

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        callback = self._callbacks.get(fullname)
        if callback is None:
            return None
        import sys

        finders = sys.meta_path
        for finder in finders[finders.index(self) + 1:] if self in finders else ():
            find_spec = getattr(finder, "find_spec", None)
            spec = find_spec(fullname, path, target) if find_spec is not None else None
            if spec is None:
                continue
            loader = spec.loader
            if loader is None or not hasattr(loader, "exec_module"):
                return spec
            original_exec = loader.exec_module
            hooks = self._callbacks

            class _Loader:
                # stands in for the real loader while the module executes, then gives it back
                def __getattr__(self, name: str) -> Any:
                    return getattr(loader, name)

                def create_module(self, spec_: Any) -> Any:
                    return loader.create_module(spec_)

                def exec_module(self, module: Any) -> None:
                    module.__loader__ = loader
                    module.__spec__.loader = loader
                    original_exec(module)
                    hook = hooks.pop(fullname, None)
                    if hook is not None:
                        hook()

            spec.loader = _Loader()
            return spec
        return None


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
