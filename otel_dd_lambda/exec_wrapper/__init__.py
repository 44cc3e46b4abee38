"""The exec wrapper for ``AWS_LAMBDA_EXEC_WRAPPER``: tracing with no change to the code or handler.

Lambda starts the runtime as ``$AWS_LAMBDA_EXEC_WRAPPER <runtime command...>`` with the
function's handler in ``_HANDLER``. The script ``otel-dd-lambda-wrapper`` next to this file moves
that handler to ``DD_LAMBDA_HANDLER`` (unless it is already set), points ``_HANDLER`` at the
redirect ``otel_dd_lambda.handler.handler``, and ``exec``s the runtime command unchanged.

Set ``AWS_LAMBDA_EXEC_WRAPPER`` to the script's path: ``otel-dd-lambda exec-wrapper-path``
prints it (``/opt/python/otel_dd_lambda/exec_wrapper/otel-dd-lambda-wrapper`` in a layer built
with ``pip install -t python/``, ``/var/task/otel_dd_lambda/exec_wrapper/otel-dd-lambda-wrapper``
when the package is in the function's own zip).
"""

from __future__ import annotations

import os

SCRIPT_NAME = "otel-dd-lambda-wrapper"


def script_path() -> str:
    """The absolute path of the wrapper script shipped in this package."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), SCRIPT_NAME)
