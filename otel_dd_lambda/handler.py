"""No-code-change instrumentation: set the function's handler to ``otel_dd_lambda.handler.handler``
and ``DD_LAMBDA_HANDLER`` to your own (``module.function``, ``dir/file.function`` or
``package.module.function``, exactly as Lambda's own handler setting).

Importing this module (Lambda does it during init) starts the cold-start import timer, runs
``configure()``, loads your handler the way the Lambda runtime would, and wraps it. Errors
loading it are your module's own errors, raised unchanged from this import, so Lambda reports
them as it would have without this redirect; a missing ``DD_LAMBDA_HANDLER`` or function is an
``ImportError`` / ``AttributeError`` naming what is missing.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any, Callable, Tuple

from . import config
from .runtime import cold_start


class HandlerError(ImportError):
    """``DD_LAMBDA_HANDLER`` is unset or malformed."""


class HandlerNotFound(AttributeError):
    """The module named by ``DD_LAMBDA_HANDLER`` has no such function."""


def parse_handler(path: str) -> Tuple[str, str]:
    """``"dir/file.func"`` -> ``("dir.file", "func")`` (Lambda's rules)."""
    module_path, dot, function_name = path.strip().rpartition(".")
    if not dot or not module_path or not function_name:
        raise HandlerError(
            "Bad handler %r in DD_LAMBDA_HANDLER: expected module.function (or dir/file.function)" % path)
    return module_path.strip("/").replace("/", "."), function_name


def load_handler(path: str) -> Callable[..., Any]:
    """Import the user's handler; the import's own exceptions propagate unchanged."""
    module_name, function_name = parse_handler(path)
    module = import_module(module_name)
    try:
        function = getattr(module, function_name)
    except AttributeError:
        raise HandlerNotFound("Handler %r missing on module %r" % (function_name, module_name)) from None
    if not callable(function):
        raise HandlerNotFound("Handler %r on module %r is not callable" % (function_name, module_name))
    return function


def _init() -> Callable[..., Any]:
    settings = config.lambda_settings()
    if not settings.lambda_handler:
        raise HandlerError(
            "DD_LAMBDA_HANDLER is not set: set it to your handler (module.function) when the "
            "function's handler is otel_dd_lambda.handler.handler")
    if not settings.trace_enabled:
        from .runtime.wrapper import instrument_handler

        return instrument_handler(load_handler(settings.lambda_handler))  # unchanged (or async adapter)
    if settings.cold_start_tracing:
        cold_start.install_import_hook()  # before configure() and the user's imports
    from .runtime.configure import configure

    configure()  # during init, which Lambda runs at full CPU, not in the first invocation
    user_handler = load_handler(settings.lambda_handler)
    from .runtime.wrapper import instrument_handler

    return instrument_handler(user_handler)


handler = _init()
