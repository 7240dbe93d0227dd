"""Process-wide settings: the size of each compiled function's cache, the
`debug_nans` switch (also ADJOINT_DEBUG_NANS=1) and the `explain_retraces` switch
(also ADJOINT_EXPLAIN_RETRACES=1)."""
from __future__ import annotations

import os
import weakref
from typing import Any

_settings: dict[str, Any] = {
    "cache_size": 64,
    "debug_nans": os.environ.get("ADJOINT_DEBUG_NANS", "") not in ("", "0"),
    "explain_retraces": os.environ.get("ADJOINT_EXPLAIN_RETRACES", "") not in ("", "0"),
}
_caches: "weakref.WeakSet[Any]" = weakref.WeakSet()  # objects with a .clear() to call


def cache_size() -> int:
    return _settings["cache_size"]


def set_cache_size(size: int) -> None:
    """How many signatures each compiled function keeps (least recently used go first)."""
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValueError(f"cache size must be a positive int, got {size!r}")
    _settings["cache_size"] = size


def register_cache(cache: Any) -> None:
    _caches.add(cache)


def clear_cache() -> None:
    """Forget every compiled function: the next call of each traces again."""
    for cache in list(_caches):
        cache.clear()


def debug_nans_enabled() -> bool:
    return _settings["debug_nans"]


def debug_nans(enabled: bool = True) -> None:
    """Compile functions that check every new value and raise `NonFiniteError`
    at the first NaN or infinity, naming the user's line that produced it."""
    _settings["debug_nans"] = bool(enabled)


def explain_retraces_enabled() -> bool:
    return _settings["explain_retraces"]


def explain_retraces(enabled: bool = True) -> None:
    """Log (logger "adjoint", level WARNING) why a compiled function traces again:
    which argument's shape, dtype, structure or static value changed, or which global
    or closure value was rebound."""
    _settings["explain_retraces"] = bool(enabled)
