"""Every environment variable the package honours, read in this one place.

Datadog's Lambda variables (users migrate with their configuration) and the standard ``OTEL_*``
ones. Functions read ``os.environ`` when called, so a test or a late ``os.environ`` change is
seen; nothing here is read at import time.
"""

from __future__ import annotations

import os
from typing import List, Mapping, Optional, Tuple

# Style names of the composite propagator, in Datadog's default precedence.
DATADOG = "datadog"
TRACECONTEXT = "tracecontext"
XRAY = "xray"
XRAY_LAMBDA = "xray-lambda"  # Lambda's _X_AMZN_TRACE_ID, a last resort
BAGGAGE = "baggage"
DEFAULT_STYLES: Tuple[str, ...] = (DATADOG, TRACECONTEXT, XRAY, XRAY_LAMBDA)

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


def env_flag(name: str, default: bool, environ: Optional[Mapping[str, str]] = None) -> bool:
    value = _env(environ).get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")
