"""``opentelemetry-instrument`` entry points: the ``otel_dd_lambda`` distro and configurator, and a
post-instrument hook.

Select them with ``OTEL_PYTHON_DISTRO=otel_dd_lambda`` (the distro then selects the configurator,
unless ``OTEL_PYTHON_CONFIGURATOR`` names another). The configurator runs ``configure()``: our
provider (Lambda span processor + Datadog exporter, Datadog/X-Ray id generator), the composite
propagator, log correlation. After the instrumentors, ``post_instrument`` puts our invocation
wrapper in the place of OpenTelemetry's Lambda wrapper (``otel_layer.step_aside``).

Installing this package changes nothing for those who do not select it: ``opentelemetry-instrument``
takes the first distro and configurator it finds when none is named, so unless named these two do
what OpenTelemetry's own would (``opentelemetry-distro``'s distro when installed, the SDK's
configurator). ``post_instrument`` only removes OTel's wrapper from around a handler that is already
ours, or when ``configure()`` has run.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]  # no stubs

from . import config

logger = logging.getLogger(__name__)

NAME = "otel_dd_lambda"


class OtelDdLambdaDistro(BaseDistro):
    """``OTEL_PYTHON_DISTRO=otel_dd_lambda``."""

    def _configure(self, **kwargs: Any) -> None:
        if config.otel_selected("distro", NAME):
            config.select_otel_configurator(NAME)
            return
        try:  # picked only for being found first: be OpenTelemetry's distro
            from opentelemetry.distro import OpenTelemetryDistro
        except ImportError:
            return
        OpenTelemetryDistro().configure(**kwargs)


class OtelDdLambdaConfigurator:
    """``OTEL_PYTHON_CONFIGURATOR=otel_dd_lambda``: ``configure()``. ``opentelemetry-instrument``
    only calls ``configure(**kwargs)`` on it."""

    def configure(self, **kwargs: Any) -> None:
        if config.otel_selected("configurator", NAME):
            from .runtime.configure import configure

            configure()
            return
        # picked only for being found first: configure the SDK as its own configurator would
        from opentelemetry.sdk._configuration import _OTelSDKConfigurator

        _OTelSDKConfigurator().configure(**kwargs)


def post_instrument() -> None:
    """After every instrumentor: one invocation wrapper, ours, where ours is wanted. Never raises."""
    try:
        if not config.in_lambda():
            return
        from . import otel_layer
        from .runtime.configure import is_configured

        outcome = otel_layer.step_aside(wrap_plain=is_configured())
        logger.debug("OTel Lambda handler wrapper: %s", outcome)
    except Exception:
        logger.debug("post-instrument step failed", exc_info=True)
