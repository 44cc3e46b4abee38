"""Lambda durable functions: the ``aws.durable.*`` tags of the invocation span.

An event with ``DurableExecutionArn`` is one invocation of a durable execution. At the start the
invocation span gets, as datadog_lambda tags it:

- ``aws.durable.execution_name`` and ``aws.durable.execution_id``: the last two path segments of
  the ARN (``arn:aws:lambda:<region>:<account>:function:<name>:<version>/durable-execution/<execution
  name>/<execution id>``); an ARN without that shape gives no tag at all;
- ``aws.durable.first_invocation``: ``"true"`` when the execution state holds exactly one
  operation (the execution itself: what the durable SDK reads as "not replaying"), else ``"false"``.

At the end, when the handler returned a mapping whose ``Status`` is ``SUCCEEDED``, ``FAILED`` or
``PENDING`` (the durable SDK's answer to Lambda), ``aws.durable.execution_status`` is that value.
The parent context comes from the execution's trace checkpoints: ``carriers.durable``.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Optional, Tuple

from ..carriers.durable import ARN_KEY, is_durable_event

logger = logging.getLogger(__name__)

EXECUTION_NAME = "aws.durable.execution_name"
EXECUTION_ID = "aws.durable.execution_id"
FIRST_INVOCATION = "aws.durable.first_invocation"
EXECUTION_STATUS = "aws.durable.execution_status"
STATUSES = frozenset(("SUCCEEDED", "FAILED", "PENDING"))
_MARKER = "durable-execution"

__all__ = ["ARN_KEY", "is_durable_event", "parse_arn", "start_tags", "execution_status", "end_tags"]


def parse_arn(arn: Any) -> Optional[Tuple[str, str]]:
    """``(execution name, execution id)`` from a durable execution ARN, else None."""
    if type(arn) is not str:
        return None
    # ".../durable-execution/<name>/<id>" at the very end; neither part may be empty
    parts = arn.rsplit("/", 3)
    if len(parts) != 4 or parts[1] != _MARKER or not parts[2] or not parts[3]:
        return None
    return parts[2], parts[3]


def start_tags(event: Any) -> Dict[str, str]:
    """The tags of a durable invocation's span at its start; {} for any other event."""
    if type(event) is not dict:
        return {}
    arn = event.get(ARN_KEY)
    if type(arn) is not str:
        return {}
    parsed = parse_arn(arn)
    if parsed is None:
        logger.debug("DurableExecutionArn without an execution name and id: no durable tags")
        return {}
    state = event.get("InitialExecutionState")
    ops = state.get("Operations") if type(state) is dict else None
    # the execution itself is the only operation before any step ran (the SDK's "not replaying")
    first = isinstance(ops, (list, dict)) and len(ops) == 1
    return {EXECUTION_NAME: parsed[0], EXECUTION_ID: parsed[1], FIRST_INVOCATION: "true" if first else "false"}


def execution_status(event: Any, response: Any) -> Optional[str]:
    """``aws.durable.execution_status`` for ``response`` when ``event`` is durable, else None."""
    return _status(response) if is_durable_event(event) else None


def end_tags(response: Any) -> Dict[str, str]:
    """The tags a durable invocation's span gets from the handler's ``response``."""
    status = _status(response)
    return {EXECUTION_STATUS: status} if status is not None else {}


def _status(response: Any) -> Optional[str]:
    if not isinstance(response, dict):  # a dict subclass is a mapping Lambda serializes too
        return None
    try:
        status = response.get("Status")
    except Exception:  # a user's dict subclass with its own get()
        return None
    return status if type(status) is str and status in STATUSES else None
