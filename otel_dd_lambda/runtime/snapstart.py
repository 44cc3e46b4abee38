"""SnapStart: a restored sandbox must not reuse the snapshot's random state or its init time.

Every sandbox restored from one snapshot resumes the same memory, so ``random`` (which the OTel
SDK's and our id generators draw from) would hand out the same trace and span ids everywhere, and
the snapshot's init time would make the first invocation look like a proactive initialization.
The Lambda runtime runs the hooks registered through ``snapshot_restore_py`` right after a restore;
ours reseeds ``random`` from the OS and starts a new cold start (``cold_start.mark_restore``).
Without that module (no SnapStart, or outside Lambda) nothing is registered.
"""

from __future__ import annotations

import logging
import random
import threading

from . import cold_start

logger = logging.getLogger(__name__)

_registered = False
_lock = threading.Lock()


def after_restore() -> None:
    """What a restored sandbox needs before its first invocation. Runs once per restore."""
    random.seed()  # from os.urandom: each restored sandbox draws its own ids
    cold_start.mark_restore()


def register_restore_hooks() -> bool:
    """Register ``after_restore`` with the runtime's SnapStart hooks, once; False without them."""
    global _registered
    with _lock:
        if _registered:
            return True
        try:
            from snapshot_restore_py import register_after_restore
        except ImportError:
            return False
        register_after_restore(after_restore)
        _registered = True
        return True
