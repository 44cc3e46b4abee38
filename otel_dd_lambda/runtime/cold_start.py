"""Cold starts: which invocation is the first of its sandbox, and what the init phase imported.

- ``invocation_state()`` answers, once per invocation, ``(cold_start, proactive_initialization)``.
  The first invocation is a cold start, unless more than 10 s passed between init (this module's
  import, or ``mark_init()``) and that invocation: Lambda then initialised the sandbox ahead of
  demand ("proactive initialization"), and nobody waited for the init — not a cold start.
- ``install_import_hook()`` times every module loaded from a file until ``take_imports()`` is
  called (``DD_COLD_START_TRACING``); ``import_timing.emit_import_spans()`` turns the slow ones
  into ``aws.lambda.load`` / ``aws.lambda.import`` spans under the first invocation, as Datadog
  does. The timer's code (``import_timing``) loads only when a function turns it on.

Per process: Lambda Managed Instances run Python as forked worker processes (awslambdaric forks
them before it loads the handler), each serving its own invocations, so each worker's first
invocation is a cold start by the same rule, as datadog_lambda counts it. A process forked after
it served invocations (``multiprocessing`` in a handler) inherits the count, it is no new sandbox.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from typing import TYPE_CHECKING, List, Optional, Tuple

if TYPE_CHECKING:
    from .import_timing import ImportRecord, ImportTimer

PROACTIVE_INIT_THRESHOLD_NS = 10 * 1_000_000_000
MAX_RECORDS = 10_000  # bounded memory even if init imports a whole distribution

_init_ns: int = time.time_ns()
_invocations: int = 0
_restored: bool = False  # the sandbox was restored from a SnapStart snapshot
_lock = threading.Lock()


def mark_init(timestamp_ns: Optional[int] = None) -> None:
    """Set the sandbox's init time (default: now). Only before the first invocation."""
    global _init_ns
    if _invocations == 0:
        _init_ns = time.time_ns() if timestamp_ns is None else timestamp_ns


def mark_restore(timestamp_ns: Optional[int] = None) -> None:
    """A SnapStart restore (default: now) begins a new sandbox: its first invocation is a cold
    start whose init is the restore, whatever happened before the snapshot."""
    global _init_ns, _invocations, _restored
    with _lock:
        _invocations = 0
        _restored = True
        _init_ns = time.time_ns() if timestamp_ns is None else timestamp_ns


def restored() -> bool:
    """Whether this sandbox was restored from a snapshot."""
    return _restored


def init_time_ns() -> int:
    return _init_ns


def invocation_state(now_ns: Optional[int] = None) -> Tuple[bool, bool]:
    """``(cold_start, proactive_initialization)`` for the invocation starting now."""
    global _invocations
    with _lock:
        _invocations += 1
        first = _invocations == 1
    if not first:
        return False, False
    now = time.time_ns() if now_ns is None else now_ns
    # whole seconds strictly over 10, as datadog_lambda counts them
    if (now - _init_ns) // 1_000_000_000 > PROACTIVE_INIT_THRESHOLD_NS // 1_000_000_000:
        return False, True
    return True, False


class paused_then_frozen:
    """``with paused_then_frozen():`` runs a block of set-up work with the cyclic garbage collector
    off, then freezes what the process holds and puts the collector back as it was.

    Setting tracing up imports the OTel SDK and this package: some 300 modules whose objects all
    live as long as the sandbox. Each collection their allocations would trigger finds nothing to
    free, so the block runs without any. Turned back on, the collector would find all of them in
    its youngest generation, walk them in its next collection (~6 ms of a cold start: the walk
    chases pointers through memory, which an instruction count understates), and again in every
    full collection of the sandbox's life. ``gc.freeze()`` moves every object tracked so far out
    of the generations instead, in constant time: reference counting still frees them, but no
    collection walks them again. What it keeps is any reference cycle among them that is already
    garbage or becomes garbage later (at the end of the handler path's set-up: ~450 objects, ~100 KB,
    classes the standard library builds at import and replaces); ``gc.unfreeze()`` gives them back
    to the collector. The handler's module is imported after the block, with the collector as the
    user left it. Nesting is fine: only the outermost block, the one that found the collector on,
    freezes and turns it back on; with the collector off, neither happens.
    """

    __slots__ = ("_was_enabled",)

    def __enter__(self) -> None:
        self._was_enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc_info: object) -> None:
        if self._was_enabled:
            gc.freeze()
            gc.enable()


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # another thread of the parent may have held it at the fork


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _reset_for_tests(init_ns: Optional[int] = None) -> None:
    global _invocations, _init_ns, _restored
    _invocations = 0
    _restored = False
    _init_ns = time.time_ns() if init_ns is None else init_ns


# ---------------------------------------------------------------- import timing


_hook: Optional[ImportTimer] = None


def install_import_hook() -> bool:
    """Start timing imports (idempotent). False when already taken (after the first invocation).
    ``import_timing`` loads here: only functions with ``DD_COLD_START_TRACING`` on time imports."""
    global _hook
    if _hook is not None:
        return True
    if _invocations:
        return False
    from .import_timing import ImportTimer

    _hook = ImportTimer(MAX_RECORDS)
    _hook.install()
    return True


def take_imports() -> List[ImportRecord]:
    """Stop timing imports and return the top-level records (empty when no hook ran)."""
    global _hook
    hook = _hook
    if hook is None:
        return []
    hook.uninstall()
    _hook = None
    return hook.roots


def hook_installed() -> bool:
    return _hook is not None
