"""No-code-change instrumentation: set the function's handler to ``otel_dd_lambda.handler.handler``
and ``DD_LAMBDA_HANDLER`` to your own (``module.function``, ``dir/file.function`` or
``package.module.function``, exactly as Lambda's own handler setting).

Importing this module (Lambda does it during init) starts the cold-start import timer, runs
``configure()``, loads your handler the way the Lambda runtime would, and wraps it.

Errors loading your handler are recorded as an error span (Datadog's ``aws.lambda`` init-error
span, see ``runtime.init_error``), flushed before the error goes on, and reported as Lambda would
have reported them without this redirect. Under Lambda's runtime interface client
(``awslambdaric``, which imports this module), a failed import, a syntax error or a missing
function is raised as the client's own ``FaultException`` with the type and message it would
have built for your handler string (``Runtime.ImportModuleError: Unable to import module 'app':
...``): were it left to the client, it would name ``otel_dd_lambda.handler`` instead. Any other
exception your module raises on import is raised unchanged. Elsewhere (a plain import) your module's errors propagate
unchanged, and a missing ``DD_LAMBDA_HANDLER`` or function is an ``ImportError`` /
``AttributeError`` naming what is missing.
"""

from __future__ import annotations

import sys
import time
from importlib import import_module
from typing import Any, Callable, Optional, Tuple

from . import config


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
        raise HandlerNotFound("Handler '%s' missing on module '%s'" % (function_name, module_name)) from None
    if not callable(function):
        raise HandlerNotFound("Handler '%s' on module '%s' is not callable" % (function_name, module_name))
    return function


def _runtime_fault() -> Optional[Any]:
    """``awslambdaric``'s ``FaultException`` when the runtime client is loaded (it is the one
    importing this module then); None elsewhere. Never imports it."""
    module = sys.modules.get("awslambdaric.lambda_runtime_exception")
    fault = getattr(module, "FaultException", None)
    return fault if isinstance(fault, type) and issubclass(fault, Exception) else None


def _load_under_runtime(path: str, fault: Any) -> Callable[..., Any]:
    """``load_handler`` whose load failures carry the runtime client's error type and message
    for ``path`` (its ``_get_handler`` rules), so that the init error names the user's module.
    The error types are the ones Lambda documents for init failures."""
    raw_module = path.rpartition(".")[0]  # the client reports the module as written
    try:
        module_name, function_name = parse_handler(path)
    except HandlerError as error:
        raise fault("Runtime.MalformedHandlerName", str(error)) from None
    if module_name.split(".")[0] in sys.builtin_module_names:
        raise fault("Runtime.BuiltInModuleConflict",
                    "Cannot use built-in module %s as a handler module" % raw_module)
    try:
        return load_handler(path)
    except ImportError as error:
        raise fault("Runtime.ImportModuleError",
                    "Unable to import module '%s': %s" % (raw_module, error)) from None
    except SyntaxError as error:
        trace = ['  File "%s" Line %s\n    %s' % (error.filename, error.lineno, error.text)]
        raise fault("Runtime.UserCodeSyntaxError",
                    "Syntax error in module '%s': %s" % (raw_module, error), trace) from None
    except HandlerNotFound as error:
        message = str(error).replace("'%s'" % module_name, "'%s'" % raw_module, 1)
        raise fault("Runtime.HandlerNotFound", message) from None


def _load(path: str) -> Callable[..., Any]:
    fault = _runtime_fault()
    return load_handler(path) if fault is None else _load_under_runtime(path, fault)


def _module_name(path: str) -> str:
    try:
        return parse_handler(path)[0]
    except HandlerError:
        return path


def _init() -> Callable[..., Any]:
    settings = config.lambda_settings()
    if not settings.lambda_handler:
        raise HandlerError(
            "DD_LAMBDA_HANDLER is not set: set it to your handler (module.function) when the "
            "function's handler is otel_dd_lambda.handler.handler")
    if not settings.trace_enabled:
        from .runtime.wrapper import instrument_handler

        return instrument_handler(_load(settings.lambda_handler))  # unchanged (or async adapter)
    from .runtime.configure import configure

    # during init, which Lambda runs at full CPU, not in the first invocation; it starts the
    # cold-start import timer first, so the user's imports below are timed
    provider = configure()
    start_ns = time.time_ns()
    try:
        user_handler = _load(settings.lambda_handler)
    except Exception as error:
        from .runtime import init_error

        init_error.report(error, _module_name(settings.lambda_handler), start_ns, provider, _runtime_fault())
        raise
    from .runtime.wrapper import instrument_handler

    return instrument_handler(user_handler)


handler = _init()
