"""One mechanism for running code around a module's execution, through ``sys.meta_path``.

Two features need it: the cold-start import timer (``cold_start``: how long each module of the
init phase took) and the botocore hook (``configure``: install the boto3 injection right after
``botocore.client`` has executed, without importing botocore ourselves). Both are a
``ChainedFinder``: it finds nothing itself, asks the finders after it, and stands in for the
loader they found only while the module executes, then gives the module its real loader back.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Optional, Sequence, Set


class ChainedFinder:
    """A ``sys.meta_path`` finder that wraps ``exec_module`` of the modules it ``wants``.

    Subclasses say which modules (``wants``, ``wraps``) and what runs around their execution
    (``begin`` before, ``end`` after, with whether the module's code raised).
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def wants(self, fullname: str) -> bool:
        return True

    def wraps(self, spec: Any) -> bool:
        """Whether to stand in for this spec's loader (it has ``exec_module``, checked already)."""
        return True

    def begin(self, name: str, filename: Optional[str]) -> Any:
        """Before the module executes; the value returned goes to ``end``."""
        return None

    def end(self, name: str, token: Any, succeeded: bool) -> None:
        """After the module executed (``succeeded`` False when its code raised)."""

    def find_spec(self, fullname: str, path: Optional[Sequence[str]] = None, target: Any = None) -> Any:
        if not self.wants(fullname):
            return None
        # Another hook that walks sys.meta_path itself (ddtrace's ModuleWatchdog) calls us back
        # from inside our own lookup: answer "not mine" then, or the module is wrapped twice.
        searching: Optional[Set[str]] = getattr(self._local, "searching", None)
        if searching is None:
            searching = self._local.searching = set()
        if fullname in searching:
            return None
        finders = sys.meta_path
        try:
            index = finders.index(self)
        except ValueError:
            return None
        searching.add(fullname)
        try:
            spec = None
            for finder in finders[index + 1:]:
                find_spec = getattr(finder, "find_spec", None)
                if find_spec is None:
                    continue
                spec = find_spec(fullname, path, target)
                if spec is not None:
                    break
        finally:
            searching.discard(fullname)
        if spec is not None:
            loader = spec.loader
            if loader is not None and hasattr(loader, "exec_module") and self.wraps(spec):
                spec.loader = _StandInLoader(loader, self, fullname, spec.origin)
        return spec

    def install(self) -> None:
        """First in ``sys.meta_path`` (idempotent)."""
        if self not in sys.meta_path:
            sys.meta_path.insert(0, self)

    def uninstall(self) -> None:
        try:
            sys.meta_path.remove(self)
        except ValueError:
            pass


class _StandInLoader:
    """Stands in for a module's loader only while the module executes."""

    def __init__(self, loader: Any, finder: ChainedFinder, name: str, filename: Optional[str]) -> None:
        self._loader = loader
        self._finder = finder
        self._name = name
        self._filename = filename

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        # Give the module its real loader back before its code runs (importlib.resources,
        # pkgutil and friends look at __loader__ / __spec__.loader).
        loader = self._loader
        try:
            module.__loader__ = loader
            if getattr(module, "__spec__", None) is not None:
                module.__spec__.loader = loader
        except Exception:
            pass
        token = self._finder.begin(self._name, self._filename)
        succeeded = False
        try:
            loader.exec_module(module)
            succeeded = True
        finally:
            self._finder.end(self._name, token, succeeded)
            # another import hook in the chain (ddtrace's ModuleWatchdog) may have put us back
            if getattr(module, "__loader__", None) is self:
                module.__loader__ = loader
