"""Lambda durable functions: the trace context saved in the execution's own checkpoint log.

A durable execution runs as several invocations (the first, then one replay per resume). Each
event carries ``DurableExecutionArn`` and ``InitialExecutionState.Operations``: the operations
recorded so far, a list (or a mapping of id to operation). ddtrace's durable-SDK integration saves
the trace context, before the execution suspends, as a STEP operation named ``_datadog_<N>``
whose ``StepDetails.Result`` is a JSON object of ``x-datadog-*`` headers; every later checkpoint
keeps the first one's parent id, so every replay parents on the same span. The carrier is the
result of the operation with the highest ``N`` (the first of equal ones; ``N`` is read as Python's
``int()`` reads it, and a negative one is never picked), exactly as datadog_lambda chooses it; it
goes through the composite propagator like any header carrier.

Registration in ``extract._from_event`` (one row, before the top-level ``_datadog`` row, since
datadog_lambda tries a durable event after every known trigger and before anything else)::

    if trigger is None and type(event) is dict and durable.ARN_KEY in event:
        return resolve(durable.checkpoint_carrier(event), composite) + (None,)

Bounded: the event is at most Lambda's payload size, each operation costs a few dict lookups,
and a result over ``MAX_DD_JSON`` characters is not parsed (a header object is ~200).
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from .common import MAX_DD_JSON, loads_object

ARN_KEY = "DurableExecutionArn"
CHECKPOINT_PREFIX = "_datadog_"
_PREFIX_LEN = len(CHECKPOINT_PREFIX)
_MAX_SUFFIX = 4300  # int() refuses longer decimal strings anyway (CPython's digit limit)


def is_durable_event(event: Any) -> bool:
    return type(event) is dict and ARN_KEY in event


def operations(event: Any) -> Optional[list]:
    """The event's recorded operations as a list, or None."""
    state = event.get("InitialExecutionState") if type(event) is dict else None
    ops = state.get("Operations") if type(state) is dict else None
    if type(ops) is dict:
        return list(ops.values())
    return ops if type(ops) is list else None


def _checkpoint_number(name: Any) -> Optional[int]:
    if type(name) is not str or not name.startswith(CHECKPOINT_PREFIX) or len(name) - _PREFIX_LEN > _MAX_SUFFIX:
        return None
    try:
        return int(name[_PREFIX_LEN:])
    except ValueError:
        return None


def latest_checkpoint(ops: list) -> Optional[Dict[str, Any]]:
    """The ``_datadog_<N>`` operation with the highest ``N`` (N >= 0), else None."""
    best, highest = None, -1
    for op in ops:
        if type(op) is not dict:
            continue
        number = _checkpoint_number(op.get("Name"))
        if number is not None and number > highest:
            best, highest = op, number
    return best


def checkpoint_carrier(event: Any) -> Optional[Dict[str, Any]]:
    """The header mapping saved in the latest trace checkpoint of a durable event, else None."""
    if not is_durable_event(event):
        return None
    ops = operations(event)
    if not ops:
        return None
    op = latest_checkpoint(ops)
    details = op.get("StepDetails") if op is not None else None
    if type(details) is not dict:
        return None
    return loads_object(details.get("Result"), MAX_DD_JSON)
